// agent_bench_grpc_client: the bare baseline of the agent's idle footprint (agent_bench). A
// gRPC mutual-TLS client with an enrolled agent's identity that opens one AgentGateway.Connect
// stream, sends nothing, and waits on it: what any gRPC agent would cost before doing anything.
// Prints "stream open" once the stream exists; exits 1 when it cannot connect or the stream
// ends. Only the benchmark runs it.

#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>
#include <string>

#include "CLI/CLI.hpp"
#include "certfleet/v1/agent.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace {

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"agent_bench_grpc_client: one idle Connect stream (agent_bench's baseline)"};
  std::string controller;
  std::string identity_dir;
  app.add_option("--controller", controller, "Controller address HOST:PORT")->required();
  app.add_option("--identity-dir", identity_dir,
                 "An agent state directory (ca.pem, identity.pem, identity.key)")
      ->required();
  CLI11_PARSE(app, argc, argv);

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadText(identity_dir + "/ca.pem");
  ssl.pem_cert_chain = ReadText(identity_dir + "/identity.pem");
  ssl.pem_private_key = ReadText(identity_dir + "/identity.key");
  if (ssl.pem_root_certs.empty() || ssl.pem_cert_chain.empty() || ssl.pem_private_key.empty()) {
    std::cerr << "no identity in " << identity_dir << "\n";
    return 1;
  }
  // The agent's keepalive settings (agent/rpc/controller_client.cc), so that both idle alike.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10 * 1000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  std::shared_ptr<grpc::Channel> channel =
      grpc::CreateCustomChannel(controller, grpc::SslCredentials(ssl), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(30))) {
    std::cerr << "cannot connect to " << controller << "\n";
    return 1;
  }
  std::unique_ptr<certfleet::v1::AgentGateway::Stub> stub =
      certfleet::v1::AgentGateway::NewStub(channel);
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<certfleet::v1::AgentMessage,
                                           certfleet::v1::ControllerMessage>>
      stream = stub->Connect(&context);
  std::cout << "stream open" << std::endl;
  certfleet::v1::ControllerMessage message;
  while (stream->Read(&message)) {
  }
  grpc::Status status = stream->Finish();
  std::cerr << "the stream ended: " << status.error_message() << "\n";
  return 1;
}
