#include "tools/bench/agent_bench.h"

#include <dirent.h>
#include <openssl/pem.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "agent/inventory/inventory.h"
#include "agent/platform/lab/lab_host_platform.h"
#include "common/crypto/describe.h"
#include "common/crypto/keys.h"
#include "common/crypto/parse.h"
#include "common/status/status_macros.h"
#include "common/time/clock.h"

namespace certfleet::bench {
namespace {

namespace crypto = common::crypto;
namespace fs = std::filesystem;

constexpr char kFqdn[] = "host1.bench.certfleet.test";

absl::Status WriteText(const std::string& path, absl::string_view text) {
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::string ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& text, size_t n = 2000) {
  return text.size() <= n ? text : text.substr(text.size() - n);
}

// A lab host per the layout of agent/platform/lab/lab_host_platform.h, written as tests and the
// simulator write one: the bench CAs in Root and CA, `leaves` certificates for kFqdn in My
// (certificate then PKCS#8 key in each file), the first one bound. Keys are reused round robin
// over `distinct_keys`.
absl::Status WriteLabHost(const std::string& root, const BenchPki& pki, int leaves,
                          int distinct_keys, absl::Time now) {
  CF_RETURN_IF_ERROR(WriteText(root + "/LocalMachine/Root/bench-root.pem",
                               crypto::CertificateToPem(pki.root.get())));
  CF_RETURN_IF_ERROR(WriteText(root + "/LocalMachine/CA/bench-issuing.pem",
                               crypto::CertificateToPem(pki.issuing.get())));
  std::vector<crypto::EvpPkeyPtr> keys;
  std::vector<std::string> key_pems;
  for (int i = 0; i < distinct_keys; ++i) {
    CF_ASSIGN_OR_RETURN(crypto::EvpPkeyPtr key, crypto::GenerateRsaKey(2048), "leaf key");
    key_pems.push_back(crypto::PrivateKeyToPem(key.get()));
    keys.push_back(std::move(key));
  }
  std::string bound_serial;
  for (int i = 0; i < leaves; ++i) {
    const size_t k = static_cast<size_t>(i % distinct_keys);
    CF_ASSIGN_OR_RETURN(crypto::X509Ptr leaf, IssueScomLeaf(pki, keys[k].get(), kFqdn, now));
    if (i == 0) {
      CF_ASSIGN_OR_RETURN(common::model::CertificateInfo info,
                          crypto::DescribeCertificate(leaf.get(), true));
      bound_serial = info.channel_serial;
    }
    CF_RETURN_IF_ERROR(
        WriteText(absl::StrFormat("%s/LocalMachine/My/leaf-%05d.pem", root, i),
                  absl::StrCat(crypto::CertificateToPem(leaf.get()), key_pems[k])));
  }
  return WriteText(root + "/Registry/Machine Settings.json",
                   absl::StrCat("{\"ChannelCertificateSerialNumber\": \"", bound_serial, "\"}\n"));
}

// The regular files of `dir`, sorted.
std::vector<std::string> FilesOf(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.is_regular_file()) files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The baseline: read each file and PEM-decode its certificate (and its key when `with_key`)
// with OpenSSL's PEM readers, nothing else. Internal when a file does not decode.
absl::StatusOr<absl::Duration> ReadAndPemDecode(const std::string& dir, bool with_key) {
  const absl::Time start = absl::Now();
  for (const std::string& path : FilesOf(dir)) {
    const std::string contents = ReadText(path);
    crypto::BioPtr bio(BIO_new_mem_buf(contents.data(), static_cast<int>(contents.size())));
    crypto::X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (cert == nullptr) return absl::InternalError(absl::StrCat(path, ": no certificate"));
    if (with_key) {
      crypto::EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
      if (key == nullptr) return absl::InternalError(absl::StrCat(path, ": no private key"));
    }
  }
  return absl::Now() - start;
}

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// Polls `pred` every 100 ms until it is true or `timeout` passed.
template <typename Pred>
bool WaitFor(Pred pred, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    if (pred()) return true;
    absl::SleepFor(absl::Milliseconds(100));
  }
  return pred();
}

// CPU use over an interval as a percentage of one core.
double CpuPercent(int64_t ticks, absl::Duration over) {
  const double seconds = absl::ToDoubleSeconds(over);
  if (seconds <= 0) return 0;
  return 100.0 * static_cast<double>(ticks) / static_cast<double>(::sysconf(_SC_CLK_TCK)) /
         seconds;
}

double Mb(int64_t kb) { return static_cast<double>(kb) / 1024.0; }

// What one process did over the idle period.
struct IdleFigures {
  ProcessFigures end;
  double cpu_percent = 0;
  int64_t cpu_ticks = 0;
};

absl::StatusOr<IdleFigures> MeasureIdle(pid_t pid, absl::Duration idle) {
  CF_ASSIGN_OR_RETURN(ProcessFigures start, ReadProcessFigures(pid));
  const absl::Time t0 = absl::Now();
  absl::SleepFor(idle);
  IdleFigures figures;
  CF_ASSIGN_OR_RETURN(figures.end, ReadProcessFigures(pid));
  figures.cpu_ticks = figures.end.cpu_ticks - start.cpu_ticks;
  figures.cpu_percent = CpuPercent(figures.cpu_ticks, absl::Now() - t0);
  return figures;
}

std::string Describe(const IdleFigures& f) {
  return absl::StrFormat("VmRSS %.1f MB (RssAnon %.1f MB, VmHWM %.1f MB), %d threads, %d ticks",
                         Mb(f.end.vm_rss_kb), Mb(f.end.rss_anon_kb), Mb(f.end.vm_hwm_kb),
                         f.end.threads, f.cpu_ticks);
}

}  // namespace

absl::StatusOr<BenchReport> RunAgentScanBench(const AgentScanOptions& options) {
  if (options.certificates < 1 || options.distinct_keys < 1 || options.rounds < 1 ||
      options.repeat_scans < 1) {
    return absl::InvalidArgumentError("certificates, keys, rounds and repeats must be >= 1");
  }
  const absl::Time now = absl::Now();
  const std::string root = options.work_dir + "/host";
  CF_ASSIGN_OR_RETURN(BenchPki pki, MakeBenchPki(now));
  const absl::Time setup_start = absl::Now();
  CF_RETURN_IF_ERROR(
      WriteLabHost(root, pki, options.certificates, options.distinct_keys, now),
      "writing the lab host");
  const absl::Duration setup = absl::Now() - setup_start;

  common::RealClock clock;
  const std::string my_dir = root + "/LocalMachine/My";
  std::vector<double> first;
  std::vector<double> repeat;
  std::vector<double> pem_full;
  std::vector<double> pem_cert;
  for (int round = 0; round < options.rounds; ++round) {
    CF_ASSIGN_OR_RETURN(std::unique_ptr<agent::platform::LabHostPlatform> host,
                        agent::platform::LabHostPlatform::Open({.root = root, .fqdn = kFqdn},
                                                               {.clock = clock}));
    agent::inventory::ScanOptions scan;
    scan.now = absl::Now();
    for (int i = 0; i <= options.repeat_scans; ++i) {
      const absl::Time start = absl::Now();
      CF_ASSIGN_OR_RETURN(agent::inventory::HostInventory inventory,
                          agent::inventory::ScanHost(*host, scan), "scan");
      const double seconds = Seconds(absl::Now() - start);
      (i == 0 ? first : repeat).push_back(seconds);
      const size_t expected = static_cast<size_t>(options.certificates) + 2;
      if (inventory.certificates.size() != expected || !inventory.errors.empty() ||
          inventory.bound_thumbprint.empty()) {
        return absl::InternalError(absl::StrCat(
            "the scan reported ", inventory.certificates.size(), " certificates (expected ",
            expected, "), ", inventory.errors.size(), " errors",
            inventory.errors.empty() ? ""
                                     : absl::StrCat(" (first: ", inventory.errors[0].location,
                                                    ": ", inventory.errors[0].error, ")"),
            inventory.bound_thumbprint.empty() ? ", nothing bound" : ""));
      }
      for (const agent::inventory::ScannedCertificate& c : inventory.certificates) {
        if (c.store == "My" && !c.info.has_private_key) {
          return absl::InternalError(absl::StrCat("My/", c.location, " reported without its key"));
        }
      }
    }
    CF_ASSIGN_OR_RETURN(absl::Duration full, ReadAndPemDecode(my_dir, true));
    CF_ASSIGN_OR_RETURN(absl::Duration cert_only, ReadAndPemDecode(my_dir, false));
    pem_full.push_back(Seconds(full));
    pem_cert.push_back(Seconds(cert_only));
  }

  const double first_s = Median(first);
  const double repeat_s = Median(repeat);
  const std::string n = FormatNumber(options.certificates);
  BenchReport report;
  report.title = absl::StrCat("agent: scan of a ", n, "-certificate lab store");
  const double first_target = Seconds(options.first_scan_target);
  const double repeat_target = Seconds(options.repeat_scan_target);
  report.rows.push_back(Compare("first scan (fresh platform)", first_s, "s",
                                "read + PEM-decode cert and key", Median(pem_full), "s")
                            .WithTarget(absl::StrCat("<= ", FormatNumber(first_target), " s"),
                                        first_s <= first_target));
  report.rows.push_back(Compare("first scan (fresh platform)", first_s, "s",
                                "read + PEM-decode cert only", Median(pem_cert), "s"));
  report.rows.push_back(Compare("repeat scan (nothing changed)", repeat_s, "s",
                                "read + PEM-decode cert only", Median(pem_cert), "s")
                            .WithTarget(absl::StrCat("<= ", FormatNumber(repeat_target), " s"),
                                        repeat_s <= repeat_target));
  auto list = [](const std::vector<double>& v) {
    std::string out;
    for (double x : v) absl::StrAppend(&out, out.empty() ? "" : ", ", FormatNumber(x));
    return out;
  };
  report.notes.push_back(absl::StrCat(
      "My holds ", n, " files, each a SCOM certificate (RSA-2048, SHA-256) followed by its PKCS#8 "
      "private key, for ",
      options.distinct_keys, " distinct keys; CA and Root hold the issuing CA and the root; one "
      "certificate is bound. Files were just written (page cache warm for every figure)."));
  report.notes.push_back(absl::StrCat("ScanHost over LabHostPlatform: listing, reading and "
                                      "checking each file (lab), then describing, chain-verifying "
                                      "and judging each certificate (inventory)."));
  report.notes.push_back(absl::StrCat("medians over ", options.rounds, " rounds; first scans: ",
                                      list(first), " s; repeat scans: ", list(repeat),
                                      " s; PEM cert+key: ", list(pem_full),
                                      " s; PEM cert only: ", list(pem_cert), " s"));
  report.notes.push_back(absl::StrCat("writing the lab host (keys, signing, files) took ",
                                      FormatNumber(Seconds(setup)), " s (not timed)"));
  return report;
}

absl::StatusOr<BenchReport> RunAgentIdleBench(const AgentIdleOptions& options) {
  const std::string dir = options.work_dir;
  const std::string state_dir = dir + "/controller";
  const std::string admin_dir = state_dir + "/admin";
  const absl::Time now = absl::Now();
  std::error_code ec;
  if (!fs::create_directories(dir, ec) && ec) {
    return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }

  CF_ASSIGN_OR_RETURN(BenchPki pki, MakeBenchPki(now));
  CF_RETURN_IF_ERROR(WriteLabHost(dir + "/host", pki, 1, 1, now), "writing the lab host");

  CF_ASSIGN_OR_RETURN(
      std::unique_ptr<ChildProcess> controller,
      ChildProcess::Start({options.controller_bin, "--state-dir", state_dir, "--listen",
                           "127.0.0.1:0", "--log-level", "warning"},
                          dir + "/controller.log"));
  const std::string addr_file = state_dir + "/listen.addr";
  if (!WaitFor([&] { return fs::exists(addr_file) || !controller->Running(); },
               options.startup_timeout) ||
      !controller->Running()) {
    return absl::UnavailableError(
        absl::StrCat("the controller did not start listening: ", Tail(controller->Log())));
  }
  const std::string address(absl::StripAsciiWhitespace(ReadText(addr_file)));
  auto ctl = [&](std::vector<std::string> args) -> absl::StatusOr<std::string> {
    args.insert(args.begin(), options.ctl_bin);
    args.insert(args.end(), {"--controller", address, "--credentials", admin_dir});
    CF_ASSIGN_OR_RETURN(CommandResult r, RunCommand(args, absl::Seconds(30)));
    if (r.exit_code != 0) {
      return absl::UnavailableError(absl::StrCat("certfleetctl ", args[1], " ", args[2],
                                                 " failed (", r.exit_code, "): ", r.err));
    }
    return r.out;
  };
  CF_ASSIGN_OR_RETURN(std::string token_out, ctl({"tokens", "create"}));
  const std::string token(absl::StripAsciiWhitespace(token_out));

  const std::string agent_state = dir + "/agent";
  fs::create_directories(agent_state, ec);
  CF_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> agent,
                      ChildProcess::Start({options.agent_bin, "--controller", address,
                                           "--state-dir", agent_state, "--platform", "lab",
                                           "--lab-root", dir + "/host", "--fqdn", kFqdn, "--token",
                                           token, "--log-level", "warning"},
                                          dir + "/agent.log"));
  const bool connected = WaitFor(
      [&] {
        if (!agent->Running()) return true;
        absl::StatusOr<std::string> agents = ctl({"agents", "list", "--output", "json"});
        return agents.ok() && absl::StrContains(*agents, "\"connected\"");
      },
      options.startup_timeout);
  if (!connected || !agent->Running()) {
    return absl::UnavailableError(
        absl::StrCat("the agent did not connect: ", Tail(agent->Log())));
  }

  // The trivial process idles beside the agent.
  CF_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> sleeper,
                      ChildProcess::Start({options.sleep_bin, "3600"}, dir + "/sleep.log"));
  absl::SleepFor(options.settle);
  CF_ASSIGN_OR_RETURN(IdleFigures agent_idle, MeasureIdle(agent->pid(), options.idle),
                      "measuring the agent");
  CF_ASSIGN_OR_RETURN(ProcessFigures sleep_figures, ReadProcessFigures(sleeper->pid()),
                      "measuring ", options.sleep_bin);
  if (!agent->Running()) {
    return absl::UnavailableError(
        absl::StrCat("the agent exited while idle: ", Tail(agent->Log())));
  }
  const bool still_connected = absl::StrContains(
      ctl({"agents", "list", "--output", "json"}).value_or(""), "\"connected\"");
  agent->Signal(SIGTERM);
  absl::StatusOr<int> agent_exit = agent->Wait(absl::Seconds(20));
  sleeper.reset();

  std::optional<IdleFigures> client_idle;
  if (!options.grpc_client_bin.empty()) {
    CF_ASSIGN_OR_RETURN(std::unique_ptr<ChildProcess> client,
                        ChildProcess::Start({options.grpc_client_bin, "--controller", address,
                                             "--identity-dir", agent_state},
                                            dir + "/grpc_client.log"));
    if (!WaitFor(
            [&] {
              return !client->Running() || absl::StrContains(client->Log(), "stream open");
            },
            options.startup_timeout) ||
        !client->Running()) {
      return absl::UnavailableError(
          absl::StrCat("the bare gRPC client did not open its stream: ", Tail(client->Log())));
    }
    absl::SleepFor(options.settle);
    CF_ASSIGN_OR_RETURN(client_idle, MeasureIdle(client->pid(), options.idle),
                        "measuring the bare gRPC client");
    if (!client->Running()) {
      return absl::UnavailableError(
          absl::StrCat("the bare gRPC client exited while idle: ", Tail(client->Log())));
    }
  }
  controller->Signal(SIGTERM);
  (void)controller->Wait(absl::Seconds(20));

  const double rss_mb = Mb(agent_idle.end.vm_rss_kb);
  const double target_mb = Mb(options.rss_target_kb);
  BenchReport report;
  report.title = "agent: idle footprint";
  const std::string rss_target = absl::StrCat("<= ", FormatNumber(target_mb), " MB");
  const bool rss_met = agent_idle.end.vm_rss_kb <= options.rss_target_kb;
  const std::string client = "bare gRPC mTLS client, one idle stream";
  if (client_idle.has_value()) {
    report.rows.push_back(
        Compare("agent idle RSS", rss_mb, "MB", client, Mb(client_idle->end.vm_rss_kb), "MB")
            .WithTarget(rss_target, rss_met));
  }
  BenchRow sleep_row =
      Compare("agent idle RSS", rss_mb, "MB", absl::StrCat("trivial process (", options.sleep_bin,
                                                           ")"),
              Mb(sleep_figures.vm_rss_kb), "MB");
  if (!client_idle.has_value()) sleep_row.WithTarget(rss_target, rss_met);
  report.rows.push_back(sleep_row);
  report.rows.push_back(Compare(
      absl::StrCat("agent idle CPU over ", absl::FormatDuration(options.idle)),
      agent_idle.cpu_percent, "% of a core", client_idle.has_value() ? client : "",
      client_idle.has_value() ? client_idle->cpu_percent : 0, "% of a core"));
  report.notes.push_back(absl::StrCat(
      "a real certfleet-controller and certfleet-agent on 127.0.0.1 (mutual TLS), the agent "
      "enrolled with a join token, on a lab host with one bound certificate and two CA "
      "certificates; measured ",
      absl::FormatDuration(options.settle), " after it connected, for ",
      absl::FormatDuration(options.idle), "; ",
      still_connected ? "still connected at the end" : "NOT connected at the end",
      "; it stopped on SIGTERM with status ",
      agent_exit.ok() ? absl::StrCat(*agent_exit) : std::string(agent_exit.status().message())));
  report.notes.push_back(absl::StrCat("agent: ", Describe(agent_idle)));
  if (client_idle.has_value()) {
    report.notes.push_back(absl::StrCat(
        "bare gRPC client (agent_bench_grpc_client: the agent's identity, one Connect stream, "
        "no messages): ",
        Describe(*client_idle)));
  }
  report.notes.push_back(absl::StrFormat("%s: VmRSS %.1f MB (RssAnon %.1f MB)", options.sleep_bin,
                                         Mb(sleep_figures.vm_rss_kb),
                                         Mb(sleep_figures.rss_anon_kb)));
  report.notes.push_back("VmRSS counts the pages of shared libraries the process touched "
                         "(libgrpc, libprotobuf, libcrypto, libstdc++...); RssAnon is its own heap "
                         "and stacks");
  return report;
}

}  // namespace certfleet::bench
