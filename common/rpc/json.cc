#include "common/rpc/json.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"

namespace certfleet::common::rpc {
namespace {

google::protobuf::util::JsonPrintOptions PrintOptions() {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  return options;
}

std::string ErrorObject(absl::string_view message) {
  google::protobuf::Struct error;
  (*error.mutable_fields())["error"].set_string_value(std::string(message));
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(error, &out).ok()) return "{}";
  return out;
}

std::string ValueToJson(const google::protobuf::Value& value) {
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(value, &out, PrintOptions()).ok()) {
    return "null";
  }
  return out;
}

}  // namespace

std::string MessageToJson(const google::protobuf::Message& message) {
  std::string out;
  auto status = google::protobuf::util::MessageToJsonString(message, &out, PrintOptions());
  if (!status.ok()) {
    return ErrorObject(absl::StrCat("cannot print ", message.GetTypeName(),
                                    " as JSON: ", std::string(status.message())));
  }
  return out;
}

std::string JsonObjectWithFields(
    const google::protobuf::Message& base,
    const std::vector<std::pair<std::string, google::protobuf::Value>>& extra) {
  google::protobuf::Struct object;
  std::string base_json = MessageToJson(base);
  auto parsed = google::protobuf::util::JsonStringToMessage(base_json, &object);
  if (!parsed.ok()) {
    return ErrorObject(absl::StrCat("cannot convert ", base.GetTypeName(),
                                    " to a JSON object: ", std::string(parsed.message())));
  }
  auto& fields = *object.mutable_fields();
  for (const auto& [key, value] : extra) fields[key] = value;

  // Struct is a map and prints in no particular order; print its entries in a stable, readable
  // order instead: the extras as given, then base's fields in declaration order, then anything
  // else sorted.
  std::vector<std::string> order;
  std::set<std::string> placed;
  auto place = [&](const std::string& key) {
    if (fields.count(key) && placed.insert(key).second) order.push_back(key);
  };
  for (const auto& entry : extra) place(entry.first);
  const google::protobuf::Descriptor* descriptor = base.GetDescriptor();
  for (int i = 0; i < descriptor->field_count(); ++i) place(descriptor->field(i)->name());
  std::set<std::string> rest;
  for (const auto& [key, value] : fields) {
    if (!placed.count(key)) rest.insert(key);
  }
  for (const std::string& key : rest) place(key);

  std::string out = "{";
  for (size_t i = 0; i < order.size(); ++i) {
    if (i > 0) out += ",";
    google::protobuf::Value key;
    key.set_string_value(order[i]);
    absl::StrAppend(&out, ValueToJson(key), ":", ValueToJson(fields.at(order[i])));
  }
  out += "}";
  return out;
}

google::protobuf::Value StringValue(std::string s) {
  google::protobuf::Value v;
  v.set_string_value(std::move(s));
  return v;
}

google::protobuf::Value BoolValue(bool b) {
  google::protobuf::Value v;
  v.set_bool_value(b);
  return v;
}

google::protobuf::Value StringListValue(const std::vector<std::string>& items) {
  google::protobuf::Value v;
  auto* list = v.mutable_list_value();
  for (const std::string& item : items) list->add_values()->set_string_value(item);
  return v;
}

}  // namespace certfleet::common::rpc
