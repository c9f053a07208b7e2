#include "common/model/identity.h"

#include <gtest/gtest.h>

#include <string>

namespace certfleet::common::model {
namespace {

TEST(RoleName, NamesEveryRoleAndRoleFromNameReadsItBack) {
  for (Role role : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    std::optional<Role> back = RoleFromName(RoleName(role));
    ASSERT_TRUE(back.has_value()) << RoleName(role);
    EXPECT_EQ(*back, role);
  }
  EXPECT_EQ(RoleName(Role::kViewer), "viewer");
  EXPECT_EQ(RoleName(Role::kOperator), "operator");
  EXPECT_EQ(RoleName(Role::kAdmin), "admin");
}

TEST(RoleFromName, RejectsUnknownAndDifferentlyCasedNames) {
  for (const char* name : {"", "Admin", "ADMIN", "root", "superuser", " viewer", "operator "}) {
    EXPECT_FALSE(RoleFromName(name).has_value()) << "'" << name << "'";
  }
}

TEST(RolesAreOrdered, ViewerBelowOperatorBelowAdmin) {
  EXPECT_LT(static_cast<int>(Role::kViewer), static_cast<int>(Role::kOperator));
  EXPECT_LT(static_cast<int>(Role::kOperator), static_cast<int>(Role::kAdmin));
}

TEST(AgentIdentityUri, HasTheDocumentedForm) {
  EXPECT_EQ(AgentIdentityUri("0a1b2c"), "certfleet://agent/0a1b2c");
}

TEST(OperatorIdentityUri, HasTheDocumentedForm) {
  EXPECT_EQ(OperatorIdentityUri(Role::kOperator, "alice@example.com"),
            "certfleet://operator/operator/alice@example.com");
}

TEST(ParseIdentityUri, ReadsBackAnAgentIdentity) {
  auto id = ParseIdentityUri(AgentIdentityUri("3f9a0c17d2e84b61"));
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->kind, PeerIdentity::Kind::kAgent);
  EXPECT_EQ(id->name, "3f9a0c17d2e84b61");
}

TEST(ParseIdentityUri, ReadsBackAnOperatorIdentityOfEveryRole) {
  for (Role role : {Role::kViewer, Role::kOperator, Role::kAdmin}) {
    auto id = ParseIdentityUri(OperatorIdentityUri(role, "ops.team-1_x@example.com"));
    ASSERT_TRUE(id.has_value()) << RoleName(role);
    EXPECT_EQ(id->kind, PeerIdentity::Kind::kOperator);
    EXPECT_EQ(id->role, role);
    EXPECT_EQ(id->name, "ops.team-1_x@example.com");
  }
}

TEST(ParseIdentityUri, AcceptsANameOf253CharactersButNot254) {
  const std::string longest(253, 'a');
  auto id = ParseIdentityUri(AgentIdentityUri(longest));
  ASSERT_TRUE(id.has_value());
  EXPECT_EQ(id->name, longest);
  EXPECT_FALSE(ParseIdentityUri(AgentIdentityUri(longest + "a")).has_value());
  EXPECT_FALSE(ParseIdentityUri(OperatorIdentityUri(Role::kAdmin, longest + "a")).has_value());
}

TEST(ParseIdentityUri, RejectsEveryMalformedForm) {
  const char* const kMalformed[] = {
      "",
      "certfleet://",
      "certfleet://agent",
      "certfleet://agent/",
      "certfleet://agent//",
      "certfleet://agent/a/b",
      "certfleet://agent/a/",
      "certfleet://agent/has space",
      "certfleet://agent/semi;colon",
      "certfleet://agent/percent%2F",
      "certfleet://agent/x\n",
      " certfleet://agent/x",
      "CERTFLEET://agent/x",
      "certfleet://Agent/x",
      "certfleet://agents/x",
      "https://agent/x",
      "spiffe://certfleet/agent/x",
      "certfleet:/agent/x",
      "certfleet://operator",
      "certfleet://operator/",
      "certfleet://operator/admin",
      "certfleet://operator/admin/",
      "certfleet://operator//alice",
      "certfleet://operator/root/alice",
      "certfleet://operator/Admin/alice",
      "certfleet://operator/admin/alice/extra",
      "certfleet://operator/admin/al ice",
      "certfleet://operator/alice",
  };
  for (const char* uri : kMalformed) {
    EXPECT_FALSE(ParseIdentityUri(uri).has_value()) << "'" << uri << "'";
  }
}

TEST(ParseIdentityUri, RejectsANameWithAnEmbeddedNul) {
  const std::string uri = std::string("certfleet://agent/abc") + '\0' + "def";
  EXPECT_FALSE(ParseIdentityUri(uri).has_value());
}

}  // namespace
}  // namespace certfleet::common::model
