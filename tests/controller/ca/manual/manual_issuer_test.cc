#include "controller/ca/manual/manual_issuer.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/crypto/issue.h"
#include "common/model/renewal.h"
#include "controller/ca/manual/approval_queue.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/controller/ca/builtin/builtin_fixture.h"

namespace certfleet::controller::ca {
namespace {

using ::certfleet::testing::BuiltinFixture;
using ::certfleet::testing::kHostFqdn;
using ::certfleet::testing::kOtherHostFqdn;
using ::certfleet::testing::TestCert;
using ::certfleet::testing::TestPki;
using common::model::ApprovalState;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using Kind = IssuanceResult::Kind;

class ManualIssuerTest : public BuiltinFixture {
 protected:
  ManualIssuerTest()
      : manual_(ManualIssuerDeps{*store_, *builtin_, clock_}, Options()),
        queue_(ApprovalQueueDeps{*store_, clock_}) {
    // The renewal job the requests belong to: Fulfill checks against its profile.
    store::AgentRecord agent;
    agent.id = "agent-1";
    agent.fqdn = std::string(kHostFqdn);
    agent.enrolled_at = clock_.Now();
    EXPECT_TRUE(store_->CreateAgent(agent).ok());
    store::RenewalRecord renewal;
    renewal.id = "ren-1";
    renewal.agent_id = "agent-1";
    renewal.fqdn = std::string(kHostFqdn);
    renewal.profile = common::model::ScomProfile();
    renewal.issuer = "manual";
    renewal.state = common::model::RenewalState::kSubmitted;
    renewal.created_at = clock_.Now();
    renewal.updated_at = clock_.Now();
    EXPECT_TRUE(store_->CreateRenewal(renewal).ok());
  }

  static ManualIssuerOptions Options() {
    ManualIssuerOptions options;
    options.poll_interval = absl::Seconds(30);
    return options;
  }

  // Submits request_ and returns the approval request's id.
  std::string SubmitPending() {
    auto result = manual_.Submit(request_);
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return "";
    EXPECT_EQ(result->kind, Kind::kPending);
    request_.cookie = result->cookie;
    return result->cookie;
  }

  // A certificate for request_'s key, signed by a CA other than the controller's.
  std::string ChainSignedElsewhere(const common::crypto::CertificateSpec& spec) {
    TestCert leaf = elsewhere_.Issue(spec, key_.get());
    return leaf.cert_pem + elsewhere_.ChainPem();
  }

  ManualIssuer manual_;
  ApprovalQueue queue_;
  TestPki elsewhere_ = TestPki::Create(absl::Now(), "Stand-alone CA");
};

TEST_F(ManualIssuerTest, SubmitQueuesARequestForAnOfficer) {
  auto result = manual_.Submit(request_);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->kind, Kind::kPending);
  EXPECT_EQ(result->retry_after, absl::Seconds(30));
  EXPECT_EQ(manual_.Name(), "manual");

  auto pending = queue_.List(ApprovalState::kPending);
  ASSERT_TRUE(pending.ok()) << pending.status();
  ASSERT_THAT(*pending, SizeIs(1));
  const store::ApprovalRequestRecord& record = pending->front();
  EXPECT_EQ(record.id, result->cookie);
  EXPECT_EQ(record.issuer, "manual");
  EXPECT_EQ(record.renewal_id, "ren-1");
  EXPECT_EQ(record.agent_id, "agent-1");
  EXPECT_EQ(record.fqdn, kHostFqdn);
  EXPECT_EQ(record.csr_pem, request_.csr_pem);
  EXPECT_EQ(record.profile_name, "scom");
  EXPECT_EQ(record.created_at, clock_.Now());
}

TEST_F(ManualIssuerTest, ASecondSubmitForTheRenewalReturnsTheSameRequest) {
  std::string id = SubmitPending();
  auto again = manual_.Submit(request_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->kind, Kind::kPending);
  EXPECT_EQ(again->cookie, id);
  auto all = queue_.List(std::nullopt);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(*all, SizeIs(1));
}

TEST_F(ManualIssuerTest, PollStaysPendingUntilAnOfficerDecides) {
  std::string id = SubmitPending();
  auto polled = manual_.Poll(request_);
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(polled->kind, Kind::kPending);
  EXPECT_EQ(polled->cookie, id);
}

TEST_F(ManualIssuerTest, AnApprovedRequestIsSignedByTheControllerCaAndRecorded) {
  std::string id = SubmitPending();
  clock_.Advance(absl::Minutes(3));
  auto approved = queue_.Approve(id, "alice");
  ASSERT_TRUE(approved.ok()) << approved.status();
  EXPECT_EQ(approved->state, ApprovalState::kApproved);
  EXPECT_EQ(approved->decided_by, "alice");
  EXPECT_EQ(approved->decided_at, clock_.Now());

  auto issued = manual_.Poll(request_);
  ASSERT_TRUE(issued.ok()) << issued.status();
  ASSERT_EQ(issued->kind, Kind::kIssued) << issued->reason;
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  ASSERT_THAT(*recorded, SizeIs(1));
  EXPECT_EQ(recorded->front().issuer, "manual");
  EXPECT_EQ(recorded->front().certificate_pem + pki_->IssuingChainPem(), issued->chain_pem);
  auto stored = queue_.Get(id);
  ASSERT_TRUE(stored.ok());
  EXPECT_EQ(stored->chain_pem, issued->chain_pem);

  // Later polls (and a repeated Submit) answer with the stored chain, signing nothing new.
  auto again = manual_.Poll(request_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->chain_pem, issued->chain_pem);
  request_.cookie.clear();
  auto resubmitted = manual_.Submit(request_);
  ASSERT_TRUE(resubmitted.ok());
  EXPECT_EQ(resubmitted->kind, Kind::kIssued);
  EXPECT_EQ(resubmitted->chain_pem, issued->chain_pem);
  recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, SizeIs(1));
}

TEST_F(ManualIssuerTest, ADeniedRequestIsRejectedWithTheOfficersReason) {
  std::string id = SubmitPending();
  auto denied = queue_.Deny(id, "bob", "host is being decommissioned");
  ASSERT_TRUE(denied.ok()) << denied.status();
  EXPECT_EQ(denied->state, ApprovalState::kDenied);
  auto polled = manual_.Poll(request_);
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(polled->kind, Kind::kRejected);
  EXPECT_THAT(polled->reason, HasSubstr("denied by bob: host is being decommissioned"));
  auto recorded = store_->ListIssuances("ren-1");
  ASSERT_TRUE(recorded.ok());
  EXPECT_THAT(*recorded, IsEmpty());
}

TEST_F(ManualIssuerTest, AFulfilledRequestAnswersWithTheCertificateSignedElsewhere) {
  std::string id = SubmitPending();
  auto csr = queue_.Export(id);
  ASSERT_TRUE(csr.ok()) << csr.status();
  EXPECT_EQ(*csr, request_.csr_pem);

  std::string chain = ChainSignedElsewhere(elsewhere_.ScomLeafSpec(kHostFqdn));
  auto fulfilled = queue_.Fulfill(id, "carol", chain);
  ASSERT_TRUE(fulfilled.ok()) << fulfilled.status();
  EXPECT_EQ(fulfilled->state, ApprovalState::kFulfilled);
  EXPECT_EQ(fulfilled->decided_by, "carol");
  EXPECT_EQ(fulfilled->chain_pem, chain);

  auto polled = manual_.Poll(request_);
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(polled->kind, Kind::kIssued);
  EXPECT_EQ(polled->chain_pem, chain);
}

TEST_F(ManualIssuerTest, FulfillRefusesACertificateTheHostCouldNotUse) {
  std::string id = SubmitPending();

  // Another key (TestPki objects share their key pool: take it from ca_, distinct from key_).
  common::crypto::EvpPkeyPtr another = ca_.NewRsaKey(2048);
  TestCert other_key = elsewhere_.Issue(elsewhere_.ScomLeafSpec(kHostFqdn), another.get());
  EXPECT_EQ(queue_.Fulfill(id, "carol", other_key.cert_pem).status().code(),
            absl::StatusCode::kInvalidArgument);

  absl::Status other_host =
      queue_.Fulfill(id, "carol", ChainSignedElsewhere(elsewhere_.ScomLeafSpec(kOtherHostFqdn)))
          .status();
  EXPECT_EQ(other_host.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(other_host.message(), HasSubstr(std::string(kOtherHostFqdn)));

  common::crypto::CertificateSpec no_client = elsewhere_.ScomLeafSpec(kHostFqdn);
  no_client.extended_key_usage = {std::string(common::model::kServerAuthOid)};
  EXPECT_EQ(queue_.Fulfill(id, "carol", ChainSignedElsewhere(no_client)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  common::crypto::CertificateSpec no_ku = elsewhere_.ScomLeafSpec(kHostFqdn);
  no_ku.key_usage = common::model::kDigitalSignature;
  EXPECT_EQ(queue_.Fulfill(id, "carol", ChainSignedElsewhere(no_ku)).status().code(),
            absl::StatusCode::kFailedPrecondition);

  common::crypto::CertificateSpec expired = elsewhere_.ScomLeafSpec(kHostFqdn);
  expired.not_before = clock_.Now() - absl::Hours(48);
  expired.not_after = clock_.Now() - absl::Hours(1);
  absl::Status old = queue_.Fulfill(id, "carol", ChainSignedElsewhere(expired)).status();
  EXPECT_EQ(old.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(old.message(), HasSubstr("not currently valid"));

  auto still = queue_.Get(id);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->state, ApprovalState::kPending);
  EXPECT_TRUE(still->chain_pem.empty());
}

TEST_F(ManualIssuerTest, FulfillNeedsTheRenewalJobsProfile) {
  request_.renewal_id = "ren-unknown";
  std::string id = SubmitPending();
  absl::Status s =
      queue_.Fulfill(id, "carol", ChainSignedElsewhere(elsewhere_.ScomLeafSpec(kHostFqdn)))
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("no profile"));
}

TEST_F(ManualIssuerTest, OnlyAPendingRequestCanBeDecided) {
  std::string id = SubmitPending();
  ASSERT_TRUE(queue_.Approve(id, "alice").ok());
  absl::Status twice = queue_.Approve(id, "bob").status();
  EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(twice.message(), HasSubstr("is approved, not pending (alice)"));
  EXPECT_EQ(queue_.Deny(id, "bob", "no").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue_.Fulfill(id, "bob", ChainSignedElsewhere(elsewhere_.ScomLeafSpec(kHostFqdn)))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(queue_.Approve("apr-missing", "alice").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ManualIssuerTest, TwoOfficersDecidingAtOnceCannotBothWin) {
  std::string id = SubmitPending();
  std::atomic<int> wins{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> officers;
  for (int i = 0; i < 6; ++i) {
    officers.emplace_back([&, i] {
      absl::Status s = i % 2 == 0 ? queue_.Approve(id, absl::StrCat("officer", i)).status()
                                  : queue_.Deny(id, absl::StrCat("officer", i), "no").status();
      if (s.ok()) ++wins;
      if (s.code() == absl::StatusCode::kFailedPrecondition) ++refused;
    });
  }
  for (std::thread& t : officers) t.join();
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(refused.load(), 5);
}

TEST_F(ManualIssuerTest, DecisionsNeedAnOfficerAndDenialsAReason) {
  std::string id = SubmitPending();
  EXPECT_EQ(queue_.Approve(id, "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(queue_.Deny(id, "bob", "").status().code(), absl::StatusCode::kInvalidArgument);
  auto still = queue_.Get(id);
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->state, ApprovalState::kPending);
}

TEST_F(ManualIssuerTest, ANewCsrForTheRenewalSupersedesItsPendingRequest) {
  std::string first = SubmitPending();
  common::crypto::EvpPkeyPtr new_key = ca_.NewRsaKey(2048);
  IssuanceRequest rekeyed = RequestFor(new_key.get(), kHostFqdn);
  auto second = manual_.Submit(rekeyed);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->kind, Kind::kPending);
  EXPECT_NE(second->cookie, first);

  auto old = queue_.Get(first);
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->state, ApprovalState::kDenied);
  EXPECT_EQ(old->decided_by, "certfleet");
  EXPECT_THAT(old->reason, HasSubstr(absl::StrCat("superseded by request ", second->cookie)));
  auto pending = queue_.List(ApprovalState::kPending);
  ASSERT_TRUE(pending.ok());
  ASSERT_THAT(*pending, SizeIs(1));
  EXPECT_EQ(pending->front().id, second->cookie);
}

TEST_F(ManualIssuerTest, PollRefusesACookieOfAnotherRenewal) {
  std::string id = SubmitPending();
  request_.renewal_id = "ren-2";
  EXPECT_EQ(manual_.Poll(request_).status().code(), absl::StatusCode::kInvalidArgument);
  request_.cookie = "apr-missing";
  EXPECT_EQ(manual_.Poll(request_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ManualIssuerTest, AnApprovedCsrThatBreaksThePolicyIsRejectedNotSigned) {
  // The policy checks again when signing: even an officer's approval cannot sign another host.
  request_ = RequestFor(key_.get(), kOtherHostFqdn);
  std::string id = SubmitPending();
  ASSERT_TRUE(queue_.Approve(id, "alice").ok());
  auto polled = manual_.Poll(request_);
  ASSERT_TRUE(polled.ok()) << polled.status();
  EXPECT_EQ(polled->kind, Kind::kRejected);
  EXPECT_THAT(polled->reason, HasSubstr("CSR refused by policy"));
}

}  // namespace
}  // namespace certfleet::controller::ca
