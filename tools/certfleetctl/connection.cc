#include "tools/certfleetctl/connection.h"

#include <iostream>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/files/file_util.h"
#include "common/status/status_macros.h"

namespace certfleet::ctl {

void AddConnectionOptions(CLI::App* cmd, Connection* conn, bool output) {
  cmd->add_option("--controller", conn->controller, "Controller address HOST:PORT")
      ->envname("CERTFLEET_CONTROLLER");
  cmd->add_option("--credentials", conn->credentials,
                  "Directory with ca.pem, client.pem, client.key")
      ->envname("CERTFLEET_CREDENTIALS");
  if (output) {
    cmd->add_option("--output,-o", conn->output, "table or json")
        ->capture_default_str()
        ->check(CLI::IsMember({"table", "json"}));
  }
}

absl::StatusOr<std::unique_ptr<certfleet::v1::Admin::Stub>> Dial(const Connection& c) {
  CF_ASSIGN_OR_RETURN(std::shared_ptr<grpc::Channel> channel, DialChannel(c));
  return certfleet::v1::Admin::NewStub(channel);
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> DialChannel(const Connection& c) {
  if (c.controller.empty()) {
    return absl::InvalidArgumentError(
        "no controller: pass --controller HOST:PORT or set CERTFLEET_CONTROLLER");
  }
  if (c.credentials.empty()) {
    return absl::InvalidArgumentError(
        "no credentials: pass --credentials DIR or set CERTFLEET_CREDENTIALS (the controller "
        "writes admin credentials to STATE_DIR/admin)");
  }
  grpc::SslCredentialsOptions ssl;
  for (auto [name, field] : {std::pair<const char*, std::string*>{"ca.pem", &ssl.pem_root_certs},
                             {"client.pem", &ssl.pem_cert_chain},
                             {"client.key", &ssl.pem_private_key}}) {
    auto data = common::ReadFileToString(c.credentials + "/" + name);
    if (!data.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("credentials directory ", c.credentials, ": ", data.status().message()));
    }
    *field = std::move(*data);
  }
  return grpc::CreateChannel(c.controller, grpc::SslCredentials(ssl));
}

void SetDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
}

int ReportRpcError(const Connection& c, const grpc::Status& s) {
  std::string what;
  switch (s.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      what = absl::StrCat("cannot reach the controller at ", c.controller,
                          " (is it running, and do the credentials in ", c.credentials,
                          " belong to it?)");
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      what = absl::StrCat("the controller at ", c.controller, " did not answer in time");
      break;
    case grpc::StatusCode::UNAUTHENTICATED:
      what = "the controller did not accept these credentials";
      break;
    case grpc::StatusCode::PERMISSION_DENIED:
      what = "permission denied";
      break;
    case grpc::StatusCode::NOT_FOUND:
      what = "not found";
      break;
    case grpc::StatusCode::INVALID_ARGUMENT:
      what = "invalid request";
      break;
    default:
      what = "the call failed";
  }
  std::cerr << "certfleetctl: " << what << ": " << s.error_message() << "\n";
  return 1;
}

int ReportError(const absl::Status& s) {
  std::cerr << "certfleetctl: " << s.message() << "\n";
  return 1;
}

}  // namespace certfleet::ctl
