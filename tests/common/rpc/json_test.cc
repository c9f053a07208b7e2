#include "common/rpc/json.h"

#include <gtest/gtest.h>

#include "certfleet/v1/types.pb.h"
#include "google/protobuf/util/json_util.h"

namespace certfleet::common::rpc {
namespace {

google::protobuf::Struct Parse(const std::string& json) {
  google::protobuf::Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(json, &s);
  EXPECT_TRUE(status.ok()) << status.ToString() << "\n" << json;
  return s;
}

TEST(MessageToJson, PreservesProtoFieldNamesAndPrintsDefaultPrimitives) {
  certfleet::v1::Certificate cert;
  cert.set_serial("00AF");
  cert.mutable_not_after()->set_seconds(1772366400);
  std::string json = MessageToJson(cert);
  EXPECT_NE(json.find("\"channel_serial\":\"\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"key_bits\":0"), std::string::npos) << json;
  EXPECT_NE(json.find("\"compliant\":false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"dns_names\":[]"), std::string::npos) << json;
  EXPECT_NE(json.find("\"not_after\":\"2026-03-01T12:00:00Z\""), std::string::npos) << json;
  EXPECT_EQ(json.find("channelSerial"), std::string::npos) << json;
}

TEST(JsonObjectWithFields, PutsTheExtrasFirstThenTheFieldsFlat) {
  certfleet::v1::Certificate cert;
  cert.set_subject("CN=a \"quoted\" name");
  cert.set_key_bits(2048);
  std::string json = JsonObjectWithFields(cert, {{"file", StringValue("dir/a.pfx")},
                                                 {"bound", BoolValue(true)},
                                                 {"drift", StringListValue({"NOT_BOUND"})}});
  EXPECT_EQ(json.rfind("{\"file\":\"dir/a.pfx\",\"bound\":true,\"drift\":[\"NOT_BOUND\"],"
                       "\"subject\":",
                       0),
            0u)
      << json;
  google::protobuf::Struct s = Parse(json);
  EXPECT_EQ(s.fields().at("file").string_value(), "dir/a.pfx");
  EXPECT_EQ(s.fields().at("subject").string_value(), "CN=a \"quoted\" name");
  EXPECT_EQ(s.fields().at("key_bits").number_value(), 2048);
  EXPECT_TRUE(s.fields().at("bound").bool_value());
  EXPECT_EQ(s.fields().at("drift").list_value().values(0).string_value(), "NOT_BOUND");
  EXPECT_TRUE(s.fields().contains("compliant"));
}

TEST(JsonObjectWithFields, AnExtraReplacesAFieldOfTheSameName) {
  certfleet::v1::Certificate cert;
  cert.set_subject("CN=original");
  std::string json = JsonObjectWithFields(cert, {{"subject", StringValue("CN=replaced")}});
  google::protobuf::Struct s = Parse(json);
  EXPECT_EQ(s.fields().at("subject").string_value(), "CN=replaced");
  EXPECT_EQ(json.find("original"), std::string::npos);
}

TEST(JsonObjectWithFields, MakesAPlainObjectFromAnEmptyStruct) {
  std::string json = JsonObjectWithFields(
      google::protobuf::Struct(), {{"file", StringValue("x")}, {"error", StringValue("bad")}});
  EXPECT_EQ(json, "{\"file\":\"x\",\"error\":\"bad\"}");
}

}  // namespace
}  // namespace certfleet::common::rpc
