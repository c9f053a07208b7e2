#pragma once

// The fixture of the integration tests: a real certfleet-controller in a temp directory, real
// agents on lab hosts written by hand per ARCHITECTURE.md's layout, certfleetctl for every
// admin call.

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/crypto/describe.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/process.h"
#include "tests/testing/test_pki.h"

namespace certfleet::testing {

namespace fs = std::filesystem;
using google::protobuf::ListValue;
using google::protobuf::Struct;

inline std::string ReadText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteText(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

inline ListValue ParseArray(const std::string& json) {
  ListValue list;
  auto s = google::protobuf::util::JsonStringToMessage(json, &list);
  EXPECT_TRUE(s.ok()) << "not a JSON array: " << json;
  return list;
}

inline std::string Str(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? "" : it->second.string_value();
}

inline std::vector<std::string> Strings(const Struct& s, const std::string& key) {
  std::vector<std::string> out;
  auto it = s.fields().find(key);
  if (it == s.fields().end()) return out;
  for (const auto& v : it->second.list_value().values()) out.push_back(v.string_value());
  return out;
}

inline bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// A lab host per ARCHITECTURE.md's layout, written by hand as the contract says tests do.
class LabHost {
 public:
  LabHost(std::string root, std::string fqdn) : root_(std::move(root)), fqdn_(std::move(fqdn)) {
    for (const char* d : {"LocalMachine/My", "LocalMachine/CA", "LocalMachine/Root", "MachineKeys",
                          "Registry", "EventLog"}) {
      fs::create_directories(root_ + "/" + d);
    }
  }
  void Trust(const TestPki& pki) {
    WriteText(root_ + "/LocalMachine/Root/enterprise-root.pem", pki.root().cert_pem);
    WriteText(root_ + "/LocalMachine/CA/enterprise-issuing.pem", pki.issuing().cert_pem);
  }
  // Puts `cert` in My, with its key linked when `linked`, else the key in MachineKeys.
  void AddToMy(const TestCert& cert, const std::string& name, bool linked = true) {
    if (linked) {
      WriteText(root_ + "/LocalMachine/My/" + name + ".pem", cert.cert_pem + cert.key_pem);
    } else {
      WriteText(root_ + "/LocalMachine/My/" + name + ".pem", cert.cert_pem);
      WriteText(root_ + "/MachineKeys/" + name + ".key", cert.key_pem);
    }
  }
  void Bind(const TestCert& cert) {
    auto info = common::crypto::DescribeCertificate(cert.cert.get(), true);
    ASSERT_TRUE(info.ok());
    BindSerial(info->channel_serial);
  }
  void BindSerial(const std::string& channel_serial) {
    WriteText(root_ + "/Registry/Machine Settings.json",
              absl::StrCat("{\"ChannelCertificateSerialNumber\": \"", channel_serial, "\"}\n"));
  }
  const std::string& root() const { return root_; }
  const std::string& fqdn() const { return fqdn_; }

 private:
  std::string root_;
  std::string fqdn_;
};

class FleetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/certfleet-it-XXXXXX";
    dir_ = mkdtemp(tmpl);
    pki_ = std::make_unique<TestPki>(TestPki::Create(absl::Now()));
    StartController("127.0.0.1:0");
  }

  void TearDown() override {
    agents_.clear();
    controller_.reset();
    if (!HasFailure()) fs::remove_all(dir_);
  }

  std::string state_dir() const { return dir_ + "/controller"; }
  std::string admin_dir() const { return state_dir() + "/admin"; }

  std::vector<std::string> ControllerArgs(const std::string& listen) {
    std::vector<std::string> args = {CERTFLEET_CONTROLLER_BIN, "--state-dir", state_dir(),
                                     "--listen", listen};
    args.insert(args.end(), extra_controller_args_.begin(), extra_controller_args_.end());
    return args;
  }

  void StartController(const std::string& listen) {
    fs::remove(state_dir() + "/listen.addr");
    controller_ = std::make_unique<Process>(ControllerArgs(listen), dir_ + "/controller.log");
    ASSERT_TRUE(
        WaitFor([&] { return fs::exists(state_dir() + "/listen.addr"); }, absl::Seconds(60)))
        << controller_->Log();
    address_ = std::string(absl::StripAsciiWhitespace(ReadText(state_dir() + "/listen.addr")));
  }

  RunResult Ctl(std::vector<std::string> args, const std::string& credentials = "") {
    args.insert(args.begin(), CERTFLEETCTL_BIN);
    args.push_back("--controller");
    args.push_back(address_);
    args.push_back("--credentials");
    args.push_back(credentials.empty() ? admin_dir() : credentials);
    return RunCommand(args);
  }

  std::string CreateToken(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"tokens", "create"};
    args.insert(args.end(), extra.begin(), extra.end());
    RunResult r = Ctl(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return std::string(absl::StripAsciiWhitespace(r.out));
  }

  std::vector<std::string> AgentArgs(const LabHost& host, const std::string& token) {
    std::vector<std::string> args = {CERTFLEET_AGENT_BIN,
                                     "--controller",
                                     address_,
                                     "--state-dir",
                                     host.root() + "-agent",
                                     "--platform",
                                     "lab",
                                     "--lab-root",
                                     host.root(),
                                     "--fqdn",
                                     host.fqdn(),
                                     "--scan-interval",
                                     "1s",
                                     "--max-backoff",
                                     "1s"};
    if (!token.empty()) {
      args.push_back("--token");
      args.push_back(token);
    }
    return args;
  }

  Process& StartAgent(const LabHost& host, const std::string& token) {
    agents_.push_back(
        std::make_unique<Process>(AgentArgs(host, token), host.root() + "-agent.log"));
    return *agents_.back();
  }

  ListValue Agents() { return ParseArray(Ctl({"agents", "list", "--output", "json"}).out); }

  int ConnectedCount() {
    int n = 0;
    ListValue agents = Agents();
    for (const auto& v : agents.values()) {
      if (Str(v.struct_value(), "status") == "connected") ++n;
    }
    return n;
  }

  std::string dir_;
  std::string address_;
  // Added to the controller's command line by StartController (e.g. --config FILE).
  std::vector<std::string> extra_controller_args_;
  std::unique_ptr<TestPki> pki_;
  std::unique_ptr<Process> controller_;
  std::vector<std::unique_ptr<Process>> agents_;
};

}  // namespace certfleet::testing
