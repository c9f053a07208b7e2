#include "tools/certfleetctl/inspect.h"

#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/files/file_util.h"
#include "common/rpc/certificate_convert.h"
#include "common/rpc/json.h"
#include "common/scom/rules.h"
#include "common/time/format.h"
#include "tools/certfleetctl/table.h"

namespace certfleet::ctl {
namespace {

namespace crypto = common::crypto;

// `status`'s message without the "<path>: " prefix ReadCertificateFile puts in front.
std::string ReasonWithoutPath(const absl::Status& status, absl::string_view path) {
  absl::string_view message = status.message();
  std::string prefix = absl::StrCat(path, ": ");
  if (absl::StartsWith(message, prefix)) message.remove_prefix(prefix.size());
  return std::string(message);
}

absl::StatusOr<std::vector<crypto::X509Ptr>> ReadRoots(const InspectOptions& options) {
  std::vector<crypto::X509Ptr> roots;
  if (!options.ca_file.has_value()) return roots;
  auto parsed = crypto::ReadCertificateFile(*options.ca_file, options.password);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(),
                        absl::StrCat("--ca-file ", parsed.status().message()));
  }
  if (parsed->certificates.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("--ca-file ", *options.ca_file, ": holds no certificate"));
  }
  return std::move(parsed->certificates);
}

InspectedFile InspectOne(const std::string& path, const InspectOptions& options,
                         const std::vector<X509*>& roots) {
  InspectedFile result;
  result.file = path;
  auto parsed = crypto::ReadCertificateFile(path, options.password);
  if (!parsed.ok()) {
    std::string reason = ReasonWithoutPath(parsed.status(), path);
    switch (parsed.status().code()) {
      case absl::StatusCode::kNotFound:
      case absl::StatusCode::kPermissionDenied:
      case absl::StatusCode::kUnavailable:
        result.error = absl::StrCat("cannot read the file: ", reason);
        break;
      default:
        result.error = reason;
    }
    return result;
  }
  if (parsed->certificates.empty()) {
    result.error = "holds a private key but no certificate";
    return result;
  }
  std::vector<X509*> all;
  for (const auto& cert : parsed->certificates) all.push_back(cert.get());
  bool file_has_key = !parsed->private_keys.empty();

  for (X509* cert : all) {
    bool has_key = false;
    for (const auto& key : parsed->private_keys) {
      if (crypto::KeyMatchesCertificate(key.get(), cert)) has_key = true;
    }
    auto info = crypto::DescribeCertificate(cert, has_key);
    if (!info.ok()) {
      result.certificates.clear();
      result.error = std::string(info.status().message());
      return result;
    }
    common::scom::EvaluationOptions evaluation;
    evaluation.now = options.now;
    evaluation.warn_within = absl::Hours(24) * options.warn_days;
    evaluation.fqdn = options.fqdn;
    evaluation.require_private_key = options.require_key || (file_has_key && !info->is_ca);
    if (options.ca_file.has_value()) {
      std::vector<X509*> intermediates;
      for (X509* other : all) {
        if (other != cert) intermediates.push_back(other);
      }
      evaluation.chain_trusted = crypto::VerifyChain(cert, intermediates, roots, options.now).ok();
    }
    std::vector<std::string> problems =
        common::scom::ProblemNames(common::scom::Evaluate(*info, evaluation));
    certfleet::v1::Certificate proto;
    common::rpc::ToProto(*info, problems, &proto);
    result.certificates.push_back(std::move(proto));
  }
  return result;
}

}  // namespace

absl::StatusOr<std::vector<InspectedFile>> InspectFiles(const InspectOptions& options) {
  auto roots = ReadRoots(options);
  if (!roots.ok()) return roots.status();
  std::vector<X509*> root_ptrs;
  for (const auto& root : *roots) root_ptrs.push_back(root.get());
  std::vector<InspectedFile> files;
  files.reserve(options.files.size());
  for (const std::string& path : options.files) {
    files.push_back(InspectOne(path, options, root_ptrs));
  }
  return files;
}

std::string RenderJson(const std::vector<InspectedFile>& files) {
  std::vector<std::string> items;
  for (const InspectedFile& file : files) {
    if (!file.error.empty()) {
      items.push_back(common::rpc::JsonObjectWithFields(
          google::protobuf::Struct(), {{"file", common::rpc::StringValue(file.file)},
                                       {"error", common::rpc::StringValue(file.error)}}));
      continue;
    }
    for (const certfleet::v1::Certificate& cert : file.certificates) {
      items.push_back(
          common::rpc::JsonObjectWithFields(cert, {{"file", common::rpc::StringValue(file.file)}}));
    }
  }
  if (items.empty()) return "[]\n";
  return absl::StrCat("[\n  ", absl::StrJoin(items, ",\n  "), "\n]\n");
}

std::string RenderTable(const std::vector<InspectedFile>& files) {
  Table table({"FILE", "SUBJECT", "SERIAL", "NOT AFTER", "PROBLEMS"});
  for (const InspectedFile& file : files) {
    if (!file.error.empty()) {
      // In the last column, so a long reason does not widen the others.
      table.AddRow({file.file, "-", "-", "-", absl::StrCat("error: ", file.error)});
      continue;
    }
    for (const certfleet::v1::Certificate& cert : file.certificates) {
      absl::Time not_after = absl::FromUnixSeconds(cert.not_after().seconds());
      table.AddRow({file.file, cert.subject().empty() ? "(empty)" : cert.subject(), cert.serial(),
                    common::FormatRfc3339(not_after),
                    cert.problems().empty() ? "-" : absl::StrJoin(cert.problems(), ",")});
    }
  }
  std::ostringstream out;
  table.Print(out);
  return out.str();
}

int InspectExitCode(const std::vector<InspectedFile>& files) {
  int code = 0;
  for (const InspectedFile& file : files) {
    if (!file.error.empty()) return 2;
    for (const certfleet::v1::Certificate& cert : file.certificates) {
      if (!cert.compliant()) code = 1;
    }
  }
  return code;
}

int RunInspect(const InspectOptions& options, std::ostream& out, std::ostream& err) {
  auto files = InspectFiles(options);
  if (!files.ok()) {
    err << "certfleetctl inspect: " << files.status().message() << "\n";
    return 2;
  }
  out << (options.output == InspectOptions::Output::kJson ? RenderJson(*files)
                                                          : RenderTable(*files));
  return InspectExitCode(*files);
}

absl::StatusOr<std::string> ReadPasswordFile(const std::string& path) {
  auto contents = common::ReadFileToString(path);
  if (!contents.ok()) return contents.status();
  std::string password = *std::move(contents);
  if (absl::EndsWith(password, "\r\n")) {
    password.resize(password.size() - 2);
  } else if (absl::EndsWith(password, "\n")) {
    password.pop_back();
  }
  return password;
}

}  // namespace certfleet::ctl
