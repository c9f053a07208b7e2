#include "agent/platform/lab/lab_host_platform.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "common/crypto/encoding.h"
#include "common/crypto/keys.h"
#include "common/crypto/openssl_types.h"
#include "common/crypto/parse.h"
#include "common/status/status_macros.h"
#include "common/time/format.h"
#include "nlohmann/json.hpp"

namespace certfleet::agent::platform {
namespace {

namespace crypto = common::crypto;
using Json = nlohmann::json;

constexpr absl::string_view kMachineKeysDir = "MachineKeys";
constexpr absl::string_view kSettingsFile = "Registry/Machine Settings.json";
constexpr absl::string_view kEventLogFile = "EventLog/Operations Manager.log";
constexpr absl::string_view kServiceFile = "Services/HealthService.json";
constexpr absl::string_view kFaultFile = "Faults/HealthService.json";

// JSON member names; char arrays because nlohmann::json does not take absl::string_view keys.
constexpr char kSerialMember[] = "ChannelCertificateSerialNumber";
constexpr char kHashMember[] = "ChannelCertificateHash";

constexpr mode_t kPublicMode = 0644;
constexpr mode_t kSecretMode = 0600;

absl::string_view StoreSubdirectory(StoreName store) {
  switch (store) {
    case StoreName::kMy:
      return "LocalMachine/My";
    case StoreName::kCa:
      return "LocalMachine/CA";
    case StoreName::kRoot:
      return "LocalMachine/Root";
  }
  return "LocalMachine/My";
}

// The status for a failed system call on `path`, with the most specific code for `err`.
absl::Status ErrnoStatus(int err, absl::string_view what, absl::string_view path) {
  std::string message = absl::StrCat(what, " '", path, "': ", std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    case ENOSPC:
    case EDQUOT:
      return absl::ResourceExhaustedError(message);
    case ENOTDIR:
    case EISDIR:
    case EEXIST:
      return absl::FailedPreconditionError(message);
    default:
      return absl::UnavailableError(message);
  }
}

// What tells one version of a file from another: an atomic replacement changes the inode, an
// edit in place the size or the times.
struct FileVersion {
  dev_t device = 0;
  ino_t inode = 0;
  off_t size = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  bool operator==(const FileVersion&) const = default;
};

FileVersion VersionOf(const struct stat& st) {
  FileVersion v;
  v.device = st.st_dev;
  v.inode = st.st_ino;
  v.size = st.st_size;
  v.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  v.ctime_ns = static_cast<int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec;
  return v;
}

// The contents of `path`; `version`, when given, receives the version that was read.
absl::StatusOr<std::string> ReadFile(const std::string& path, FileVersion* version = nullptr) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  if (version != nullptr) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "cannot inspect", path);
    }
    *version = VersionOf(st);
  }
  std::string contents;
  char buffer[16384];
  while (true) {
    ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return ErrnoStatus(err, "cannot read", path);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return contents;
}

absl::Status WriteAll(int fd, absl::string_view data, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "cannot write", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Writes `contents` to `dir`/`name` through a temporary file in `dir` and a rename, so that a
// reader sees the old file or the new one, never a part. The file gets `mode`.
absl::Status WriteFileAtomically(const std::string& dir, absl::string_view name,
                                 absl::string_view contents, mode_t mode) {
  const std::string path = absl::StrCat(dir, "/", name);
  std::string tmp = absl::StrCat(dir, "/.", name, ".tmpXXXXXX");
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return ErrnoStatus(errno, "cannot create a temporary file for", path);
  absl::Status status;
  if (::fchmod(fd, mode) != 0) status = ErrnoStatus(errno, "cannot set the mode of", tmp);
  if (status.ok()) status = WriteAll(fd, contents, tmp);
  if (status.ok() && ::fsync(fd) != 0) status = ErrnoStatus(errno, "cannot sync", tmp);
  if (::close(fd) != 0 && status.ok()) status = ErrnoStatus(errno, "cannot close", tmp);
  if (status.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) {
    status = ErrnoStatus(errno, "cannot rename a temporary file onto", path);
  }
  if (!status.ok()) ::unlink(tmp.c_str());
  return status;
}

struct ListedFile {
  std::string name;
  FileVersion version;
};

// The regular files in `dir` whose names do not start with ".", sorted by name. Unavailable
// naming the directory when it cannot be read.
absl::StatusOr<std::vector<ListedFile>> ListFiles(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) {
    absl::Status status = ErrnoStatus(errno, "cannot read directory", dir);
    // A store that cannot be read is unavailable, whatever the cause.
    return absl::UnavailableError(status.message());
  }
  std::vector<ListedFile> files;
  while (struct dirent* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::string name = e->d_name;
    struct stat st;
    if (::stat(absl::StrCat(dir, "/", name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    files.push_back(ListedFile{std::move(name), VersionOf(st)});
  }
  ::closedir(d);
  std::sort(files.begin(), files.end(),
            [](const ListedFile& a, const ListedFile& b) { return a.name < b.name; });
  return files;
}

bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// An id names one file directly inside its directory.
absl::Status ValidateId(absl::string_view id, absl::string_view what) {
  if (id.empty() || id[0] == '.' || id.find('/') != absl::string_view::npos ||
      id.find('\0') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("'", id, "' is not a valid ", what, " id"));
  }
  return absl::OkStatus();
}

// RFC 3339 UTC with as many fractional digits as the time needs, so that ReadSince(t) finds an
// event written at t.
std::string FormatEventTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%d%ET%H:%M:%E*SZ", t, absl::UTCTimeZone());
}

std::string EventLine(const HostEvent& event) {
  std::string message =
      absl::StrReplaceAll(event.message, {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  std::string level = absl::StrReplaceAll(event.level, {{"\t", " "}, {"\n", " "}, {"\r", " "}});
  return absl::StrCat(FormatEventTime(event.time), "\t", event.id, "\t", level, "\t", message,
                      "\n");
}

std::optional<HostEvent> ParseEventLine(absl::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits('\t', 3));
  if (fields.size() != 4) return std::nullopt;
  absl::StatusOr<absl::Time> time = common::ParseRfc3339(fields[0]);
  if (!time.ok()) return std::nullopt;
  HostEvent event;
  event.time = *time;
  if (!absl::SimpleAtoi(fields[1], &event.id)) return std::nullopt;
  if (fields[2].empty()) return std::nullopt;
  event.level = std::string(fields[2]);
  event.message = std::string(fields[3]);
  return event;
}

// Parses `text` as a JSON object. DataLoss naming `path` otherwise.
absl::StatusOr<Json> ParseJsonObject(absl::string_view text, const std::string& path) {
  Json json = Json::parse(text.begin(), text.end(), /*cb=*/nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) {
    return absl::DataLossError(absl::StrCat("'", path, "' is not valid JSON"));
  }
  if (!json.is_object()) {
    return absl::DataLossError(absl::StrCat("'", path, "' does not hold a JSON object"));
  }
  return json;
}

std::string DumpJson(const Json& json) {
  return json.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

// One certificate file of a store, parsed.
struct ParsedEntry {
  StoredCertificate entry;
  crypto::X509Ptr cert;    // null when entry.error is set
  crypto::EvpPkeyPtr key;  // My only, when linked
};

// Parses the contents of a store file per the layout: exactly one certificate; in My at most
// one private key, which must match it. Problems land in entry.error.
ParsedEntry ParseEntry(StoreName store, std::string id, absl::string_view contents) {
  ParsedEntry parsed;
  parsed.entry.id = std::move(id);
  absl::StatusOr<crypto::ParsedFile> file = crypto::ParseCertificateFile(contents, std::nullopt);
  if (!file.ok()) {
    parsed.entry.error = std::string(file.status().message());
    return parsed;
  }
  if (file->format == crypto::ParsedFile::Format::kPkcs12) {
    parsed.entry.error =
        "a PKCS#12 file is not a store entry (a store holds one PEM or DER certificate per "
        "file)";
    return parsed;
  }
  if (file->certificates.size() != 1) {
    parsed.entry.error = absl::StrCat("holds ", file->certificates.size(),
                                      " certificates; a store holds one certificate per file");
    return parsed;
  }
  if (store == StoreName::kMy && !file->private_keys.empty()) {
    if (file->private_keys.size() > 1) {
      parsed.entry.error = absl::StrCat("holds ", file->private_keys.size(),
                                        " private keys; at most one may be linked");
      return parsed;
    }
    if (!crypto::KeyMatchesCertificate(file->private_keys[0].get(), file->certificates[0].get())) {
      parsed.entry.error = "the private key in the file does not match its certificate";
      return parsed;
    }
    parsed.key = std::move(file->private_keys[0]);
    parsed.entry.has_private_key = true;
  }
  parsed.cert = std::move(file->certificates[0]);
  parsed.entry.der = crypto::CertificateToDer(parsed.cert.get());
  return parsed;
}

// The contents of a store file for `cert`, with `key` linked when given.
std::string EntryContents(X509* cert, EVP_PKEY* key) {
  std::string contents = crypto::CertificateToPem(cert);
  if (key != nullptr) contents += crypto::PrivateKeyToPem(key);
  return contents;
}

absl::StatusOr<RestartFault> ParseFault(absl::string_view text, const std::string& path) {
  CF_ASSIGN_OR_RETURN(Json json, ParseJsonObject(text, path));
  RestartFault fault;
  if (json.contains("restart")) {
    const Json& restart = json["restart"];
    std::optional<RestartFault::Kind> kind;
    if (restart.is_string()) kind = RestartFaultKindFromText(restart.get<std::string>());
    if (!kind.has_value()) {
      return absl::DataLossError(absl::StrCat(
          "'", path, "': \"restart\" must be \"fail\", \"hang\", \"no_event\" or \"none\""));
    }
    fault.kind = *kind;
  }
  if (json.contains("hang_seconds")) {
    const Json& seconds = json["hang_seconds"];
    if (!seconds.is_number() || seconds.get<double>() < 0) {
      return absl::DataLossError(
          absl::StrCat("'", path, "': \"hang_seconds\" must be a non-negative number"));
    }
    fault.hang = absl::Seconds(seconds.get<double>());
  }
  if (json.contains("times")) {
    const Json& times = json["times"];
    if (!times.is_number_integer()) {
      return absl::DataLossError(absl::StrCat("'", path, "': \"times\" must be an integer"));
    }
    fault.times = times.get<int>();
  }
  return fault;
}

std::string FaultJson(const RestartFault& fault) {
  Json json = Json::object();
  json["restart"] = std::string(RestartFaultKindText(fault.kind));
  json["hang_seconds"] = absl::ToDoubleSeconds(fault.hang);
  if (fault.times >= 0) json["times"] = fault.times;
  return DumpJson(json);
}

}  // namespace

class LabHostPlatform::Store final : public CertificateStore {
 public:
  explicit Store(LabHostPlatform& lab) : lab_(lab) {}

  absl::StatusOr<std::vector<StoredCertificate>> List(StoreName store) override {
    absl::MutexLock lock(&lab_.files_mu_);
    return ReadStore(store);
  }

  absl::StatusOr<std::string> Add(StoreName store, absl::string_view der,
                                  const std::optional<std::string>& private_key_pem) override {
    absl::StatusOr<crypto::X509Ptr> cert = crypto::CertificateFromDer(der);
    if (!cert.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adding to store ", StoreNameText(store),
                       ": not a DER certificate: ", cert.status().message()));
    }
    crypto::EvpPkeyPtr key;
    if (private_key_pem.has_value()) {
      CF_ASSIGN_OR_RETURN(key, LinkableKey(store, cert->get(), *private_key_pem));
    }
    const std::string canonical = crypto::CertificateToDer(cert->get());
    const std::string dir = lab_.StoreDirectory(store);

    absl::MutexLock lock(&lab_.files_mu_);
    CF_ASSIGN_OR_RETURN(std::vector<StoredCertificate> existing, ReadStore(store));
    for (const StoredCertificate& entry : existing) {
      if (!entry.error.empty() || entry.der != canonical) continue;
      if (key != nullptr && !entry.has_private_key) {
        CF_RETURN_IF_ERROR(
            WriteFileAtomically(dir, entry.id, EntryContents(cert->get(), key.get()), kSecretMode),
            "linking the key to ", StoreNameText(store), "/", entry.id);
      }
      return entry.id;
    }
    const std::string base = crypto::Sha1Hex(canonical);
    std::string id = absl::StrCat(base, ".pem");
    for (int n = 1; FileExists(absl::StrCat(dir, "/", id)); ++n) {
      id = absl::StrCat(base, "-", n, ".pem");
    }
    CF_RETURN_IF_ERROR(WriteFileAtomically(dir, id, EntryContents(cert->get(), key.get()),
                                           key != nullptr ? kSecretMode : kPublicMode),
                       "adding to store ", StoreNameText(store));
    return id;
  }

  absl::Status Remove(StoreName store, absl::string_view id) override {
    CF_RETURN_IF_ERROR(ValidateId(id, "certificate"));
    const std::string path = absl::StrCat(lab_.StoreDirectory(store), "/", id);
    absl::MutexLock lock(&lab_.files_mu_);
    if (::unlink(path.c_str()) != 0) {
      if (errno == ENOENT) {
        return absl::NotFoundError(
            absl::StrCat("no entry '", id, "' in store ", StoreNameText(store)));
      }
      return ErrnoStatus(errno, "cannot remove", path);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<KeyContainer>> ListKeyContainers() override {
    const std::string dir = lab_.PathOf(kMachineKeysDir);
    absl::MutexLock lock(&lab_.files_mu_);
    CF_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(dir));
    std::vector<KeyContainer> out;
    out.reserve(files.size());
    for (ListedFile& file : files) {
      KeyContainer container;
      container.id = std::move(file.name);
      absl::StatusOr<crypto::EvpPkeyPtr> key = ReadKeyFile(dir, container.id);
      if (key.ok()) {
        container.public_key_der = crypto::PublicKeyDer(key->get());
      } else {
        container.error = std::string(key.status().message());
      }
      out.push_back(std::move(container));
    }
    return out;
  }

  absl::StatusOr<std::string> AddKeyContainer(absl::string_view private_key_pem) override {
    absl::StatusOr<crypto::EvpPkeyPtr> key = crypto::PrivateKeyFromPem(private_key_pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("adding a key container: not a private key: ", key.status().message()));
    }
    const std::string dir = lab_.PathOf(kMachineKeysDir);
    const std::string public_der = crypto::PublicKeyDer(key->get());
    const std::string base = crypto::Sha1Hex(public_der);
    absl::MutexLock lock(&lab_.files_mu_);
    std::string id = absl::StrCat(base, ".pem");
    for (int n = 1; FileExists(absl::StrCat(dir, "/", id)); ++n) {
      absl::StatusOr<crypto::EvpPkeyPtr> existing = ReadKeyFile(dir, id);
      if (existing.ok() && crypto::PublicKeyDer(existing->get()) == public_der) return id;
      id = absl::StrCat(base, "-", n, ".pem");
    }
    CF_RETURN_IF_ERROR(
        WriteFileAtomically(dir, id, crypto::PrivateKeyToPem(key->get()), kSecretMode),
        "adding a key container");
    return id;
  }

  absl::Status LinkKey(absl::string_view certificate_id, absl::string_view container_id) override {
    CF_RETURN_IF_ERROR(ValidateId(certificate_id, "certificate"));
    CF_RETURN_IF_ERROR(ValidateId(container_id, "key container"));
    const std::string my_dir = lab_.StoreDirectory(StoreName::kMy);
    const std::string keys_dir = lab_.PathOf(kMachineKeysDir);
    absl::MutexLock lock(&lab_.files_mu_);
    CF_ASSIGN_OR_RETURN(ParsedEntry entry, ReadEntry(StoreName::kMy, certificate_id));
    if (!entry.entry.error.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "certificate '", certificate_id, "' in store My is not readable: ", entry.entry.error));
    }
    absl::StatusOr<crypto::EvpPkeyPtr> key = ReadKeyFile(keys_dir, container_id);
    if (!key.ok()) {
      if (absl::IsNotFound(key.status())) {
        return absl::NotFoundError(absl::StrCat("no key container '", container_id, "'"));
      }
      return absl::FailedPreconditionError(absl::StrCat(
          "key container '", container_id, "' is not readable: ", key.status().message()));
    }
    if (!crypto::KeyMatchesCertificate(key->get(), entry.cert.get())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "key container '", container_id, "' does not match certificate '", certificate_id, "'"));
    }
    CF_RETURN_IF_ERROR(
        WriteFileAtomically(my_dir, certificate_id, EntryContents(entry.cert.get(), key->get()),
                            kSecretMode),
        "linking key container '", container_id, "'");
    const std::string container_path = absl::StrCat(keys_dir, "/", container_id);
    if (::unlink(container_path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "linked, but cannot remove the key container", container_path);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> LinkedPrivateKeyPem(absl::string_view certificate_id) override {
    CF_RETURN_IF_ERROR(ValidateId(certificate_id, "certificate"));
    absl::MutexLock lock(&lab_.files_mu_);
    CF_ASSIGN_OR_RETURN(ParsedEntry entry, ReadEntry(StoreName::kMy, certificate_id));
    if (entry.key == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("certificate '", certificate_id, "' in store My has no linked private key",
                       entry.entry.error.empty() ? "" : ": ", entry.entry.error));
    }
    return crypto::PrivateKeyToPem(entry.key.get());
  }

 private:
  // The key in `pem` when it may be linked to `cert` in `store`; InvalidArgument otherwise.
  static absl::StatusOr<crypto::EvpPkeyPtr> LinkableKey(StoreName store, X509* cert,
                                                        absl::string_view pem) {
    if (store != StoreName::kMy) {
      return absl::InvalidArgumentError(
          absl::StrCat("a private key can be linked only in store My, not ", StoreNameText(store)));
    }
    absl::StatusOr<crypto::EvpPkeyPtr> key = crypto::PrivateKeyFromPem(pem);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a private key: ", key.status().message()));
    }
    if (!crypto::KeyMatchesCertificate(key->get(), cert)) {
      return absl::InvalidArgumentError("the private key does not match the certificate");
    }
    return std::move(*key);
  }

  // Every file of `store` as List returns it. Unavailable when the directory cannot be read.
  // A file whose version is unchanged since the last call is not read or parsed again
  // (decoding a certificate and its key costs OpenSSL 3 about half a millisecond).
  absl::StatusOr<std::vector<StoredCertificate>> ReadStore(StoreName store)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lab_.files_mu_) {
    const std::string dir = lab_.StoreDirectory(store);
    CF_ASSIGN_OR_RETURN(std::vector<ListedFile> files, ListFiles(dir), "listing store ",
                        StoreNameText(store));
    std::map<std::string, CachedEntry>& cache = cache_[static_cast<size_t>(store)];
    std::map<std::string, CachedEntry> fresh;
    std::vector<StoredCertificate> out;
    out.reserve(files.size());
    for (ListedFile& file : files) {
      auto cached = cache.find(file.name);
      if (cached != cache.end() && cached->second.version == file.version) {
        out.push_back(cached->second.entry);
        fresh.insert(cache.extract(cached));
        continue;
      }
      FileVersion version;
      absl::StatusOr<std::string> contents = ReadFile(absl::StrCat(dir, "/", file.name), &version);
      if (!contents.ok()) {
        if (absl::IsNotFound(contents.status())) continue;  // removed meanwhile
        StoredCertificate unreadable;
        unreadable.id = std::move(file.name);
        unreadable.error = std::string(contents.status().message());
        out.push_back(std::move(unreadable));
        continue;
      }
      StoredCertificate entry = ParseEntry(store, file.name, *contents).entry;
      out.push_back(entry);
      fresh.emplace(std::move(file.name), CachedEntry{version, std::move(entry)});
    }
    cache.swap(fresh);
    return out;
  }

  // The file `id` of `store`, parsed. NotFound when there is no such file.
  absl::StatusOr<ParsedEntry> ReadEntry(StoreName store, absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(lab_.files_mu_) {
    absl::StatusOr<std::string> contents =
        ReadFile(absl::StrCat(lab_.StoreDirectory(store), "/", id));
    if (!contents.ok()) {
      if (absl::IsNotFound(contents.status())) {
        return absl::NotFoundError(
            absl::StrCat("no certificate '", id, "' in store ", StoreNameText(store)));
      }
      return contents.status();
    }
    return ParseEntry(store, std::string(id), *contents);
  }

  static absl::StatusOr<crypto::EvpPkeyPtr> ReadKeyFile(const std::string& dir,
                                                        absl::string_view id) {
    CF_ASSIGN_OR_RETURN(std::string contents, ReadFile(absl::StrCat(dir, "/", id)));
    absl::StatusOr<crypto::EvpPkeyPtr> key = crypto::PrivateKeyFromPem(contents);
    if (!key.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a PEM private key: ", key.status().message()));
    }
    return key;
  }

  struct CachedEntry {
    FileVersion version;
    StoredCertificate entry;
  };

  LabHostPlatform& lab_;
  // Per store (indexed by StoreName): the entries of the files seen by the last ReadStore.
  std::array<std::map<std::string, CachedEntry>, 3> cache_ ABSL_GUARDED_BY(lab_.files_mu_);
};

class LabHostPlatform::Registry final : public BindingRegistry {
 public:
  explicit Registry(LabHostPlatform& lab) : lab_(lab) {}

  absl::StatusOr<MachineSettings> Read() override {
    const std::string path = lab_.PathOf(kSettingsFile);
    absl::MutexLock lock(&lab_.files_mu_);
    absl::StatusOr<std::string> text = ReadFile(path);
    if (absl::IsNotFound(text.status())) return MachineSettings{};
    if (!text.ok()) return text.status();
    CF_ASSIGN_OR_RETURN(Json json, ParseJsonObject(*text, path));
    MachineSettings settings;
    if (json.contains(kSerialMember) && !json[kSerialMember].is_null()) {
      const Json& value = json[kSerialMember];
      absl::StatusOr<std::string> serial = value.is_string()
                                               ? NormalizeChannelSerial(value.get<std::string>())
                                               : absl::InvalidArgumentError("not a string");
      if (!serial.ok()) {
        return absl::DataLossError(absl::StrCat("'", path, "': ", kSerialMember,
                                                " is not hex: ", serial.status().message()));
      }
      settings.channel_certificate_serial = std::move(*serial);
    }
    if (json.contains(kHashMember) && !json[kHashMember].is_null()) {
      const Json& value = json[kHashMember];
      if (!value.is_string()) {
        return absl::DataLossError(absl::StrCat("'", path, "': ", kHashMember, " is not a string"));
      }
      settings.channel_certificate_hash = value.get<std::string>();
    }
    return settings;
  }

  absl::Status Write(const MachineSettings& settings) override {
    std::optional<std::string> serial;
    if (settings.channel_certificate_serial.has_value()) {
      CF_ASSIGN_OR_RETURN(serial, NormalizeChannelSerial(*settings.channel_certificate_serial));
    }
    const std::string path = lab_.PathOf(kSettingsFile);
    absl::MutexLock lock(&lab_.files_mu_);
    // Keep the other values of the key; a corrupt file is replaced (Write sets the values).
    Json json = Json::object();
    absl::StatusOr<std::string> text = ReadFile(path);
    if (text.ok()) {
      absl::StatusOr<Json> existing = ParseJsonObject(*text, path);
      if (existing.ok()) json = std::move(*existing);
    }
    if (serial.has_value()) {
      json[kSerialMember] = *serial;
    } else {
      json.erase(kSerialMember);
    }
    if (settings.channel_certificate_hash.has_value()) {
      json[kHashMember] = *settings.channel_certificate_hash;
    } else {
      json.erase(kHashMember);
    }
    return WriteFileAtomically(lab_.PathOf("Registry"), "Machine Settings.json", DumpJson(json),
                               kPublicMode);
  }

 private:
  LabHostPlatform& lab_;
};

class LabHostPlatform::Log final : public EventLog {
 public:
  explicit Log(LabHostPlatform& lab) : lab_(lab) {}

  absl::StatusOr<std::vector<HostEvent>> ReadSince(absl::Time since, size_t max_events) override {
    const std::string path = lab_.PathOf(kEventLogFile);
    std::string text;
    {
      absl::MutexLock lock(&lab_.files_mu_);
      absl::StatusOr<std::string> read = ReadFile(path);
      if (absl::IsNotFound(read.status())) return std::vector<HostEvent>{};
      if (!read.ok()) return read.status();
      text = std::move(*read);
    }
    std::vector<HostEvent> events;
    for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::optional<HostEvent> event = ParseEventLine(line);
      if (event.has_value() && event->time >= since) events.push_back(std::move(*event));
    }
    return SelectEventsSince(std::move(events), since, max_events);
  }

 private:
  LabHostPlatform& lab_;
};

class LabHostPlatform::Service final : public ServiceControl {
 public:
  explicit Service(LabHostPlatform& lab) : lab_(lab) {}

  absl::StatusOr<ServiceState> State() override {
    const std::string path = lab_.PathOf(kServiceFile);
    absl::MutexLock lock(&lab_.files_mu_);
    absl::StatusOr<std::string> text = ReadFile(path);
    if (absl::IsNotFound(text.status())) return ServiceState::kRunning;
    if (!text.ok()) return text.status();
    CF_ASSIGN_OR_RETURN(Json json, ParseJsonObject(*text, path));
    if (json.contains("state") && json["state"].is_string()) {
      const std::string state = json["state"].get<std::string>();
      if (state == "running") return ServiceState::kRunning;
      if (state == "stopped") return ServiceState::kStopped;
    }
    return absl::DataLossError(
        absl::StrCat("'", path, "': \"state\" must be \"running\" or \"stopped\""));
  }

  absl::Status Restart() override {
    absl::MutexLock restart_lock(&lab_.restart_mu_);
    RestartFault fault;
    {
      absl::MutexLock lock(&lab_.files_mu_);
      CF_ASSIGN_OR_RETURN(fault, TakeFault(), "restarting the HealthService");
    }
    RestartOutcome outcome = lab_.emulator_->Restart(fault);
    absl::MutexLock lock(&lab_.files_mu_);
    Json state = Json::object();
    state["state"] = outcome.state == ServiceState::kStopped ? "stopped" : "running";
    CF_RETURN_IF_ERROR(WriteFileAtomically(lab_.PathOf("Services"), "HealthService.json",
                                           DumpJson(state), kPublicMode),
                       "recording the HealthService state");
    if (outcome.event.has_value()) {
      CF_RETURN_IF_ERROR(lab_.AppendEventLocked(*outcome.event), "writing the HealthService event");
    }
    return outcome.status;
  }

 private:
  // The fault for this restart; counts ROOT/Faults/HealthService.json's "times" down.
  // DataLoss naming the file when it is corrupt.
  absl::StatusOr<RestartFault> TakeFault() ABSL_EXCLUSIVE_LOCKS_REQUIRED(lab_.files_mu_) {
    const std::string path = lab_.PathOf(kFaultFile);
    absl::StatusOr<std::string> text = ReadFile(path);
    if (absl::IsNotFound(text.status())) return RestartFault{};
    if (!text.ok()) return text.status();
    CF_ASSIGN_OR_RETURN(RestartFault fault, ParseFault(*text, path));
    if (fault.times == 0) return RestartFault{};
    if (fault.times > 0) {
      RestartFault rest = fault;
      --rest.times;
      if (rest.times == 0) {
        if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
          return ErrnoStatus(errno, "cannot remove", path);
        }
      } else {
        CF_RETURN_IF_ERROR(WriteFileAtomically(lab_.PathOf("Faults"), "HealthService.json",
                                               FaultJson(rest), kPublicMode));
      }
    }
    return fault;
  }

  LabHostPlatform& lab_;
};

absl::StatusOr<std::unique_ptr<LabHostPlatform>> LabHostPlatform::Open(const LabOptions& options,
                                                                       const LabDeps& deps) {
  if (options.root.empty()) return absl::InvalidArgumentError("lab host: root is empty");
  if (options.fqdn.empty()) return absl::InvalidArgumentError("lab host: fqdn is empty");
  std::string root = options.root;
  while (root.size() > 1 && root.back() == '/') root.pop_back();

  // Each directory of the layout, parents first.
  const std::vector<std::pair<std::string, mode_t>> dirs = {
      {"", 0755},
      {"LocalMachine", 0755},
      {"LocalMachine/My", 0755},
      {"LocalMachine/CA", 0755},
      {"LocalMachine/Root", 0755},
      {"MachineKeys", 0700},
      {"Registry", 0755},
      {"EventLog", 0755},
      {"Services", 0755},
      {"Faults", 0755},
  };
  for (const auto& [relative, mode] : dirs) {
    const std::string path = relative.empty() ? root : absl::StrCat(root, "/", relative);
    if (relative.empty()) {
      // Create the root's own parents as well.
      for (size_t pos = path.find('/', 1); pos != std::string::npos;
           pos = path.find('/', pos + 1)) {
        ::mkdir(path.substr(0, pos).c_str(), 0755);
      }
    }
    if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, "lab host: cannot create directory", path);
    }
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
      return ErrnoStatus(errno, "lab host: cannot inspect", path);
    }
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("lab host: '", path, "' exists and is not a directory"));
    }
  }
  LabOptions normalized = options;
  normalized.root = std::move(root);
  return std::unique_ptr<LabHostPlatform>(new LabHostPlatform(normalized, deps));
}

LabHostPlatform::LabHostPlatform(const LabOptions& options, const LabDeps& deps)
    : options_(options), clock_(deps.clock) {
  store_ = std::make_unique<Store>(*this);
  registry_ = std::make_unique<Registry>(*this);
  log_ = std::make_unique<Log>(*this);
  emulator_ = std::make_unique<HealthServiceEmulator>(
      HealthServiceEmulator::Deps{*store_, *registry_, clock_}, options_.fqdn,
      options_.max_restart_time);
  service_ = std::make_unique<Service>(*this);
}

LabHostPlatform::~LabHostPlatform() = default;

CertificateStore& LabHostPlatform::Certificates() { return *store_; }
BindingRegistry& LabHostPlatform::Binding() { return *registry_; }
ServiceControl& LabHostPlatform::HealthService() { return *service_; }
EventLog& LabHostPlatform::Events() { return *log_; }

std::string LabHostPlatform::StoreDirectory(StoreName store) const {
  return PathOf(StoreSubdirectory(store));
}

std::string LabHostPlatform::PathOf(absl::string_view relative) const {
  return absl::StrCat(options_.root, "/", relative);
}

absl::Status LabHostPlatform::AppendEvent(const HostEvent& event) {
  absl::MutexLock lock(&files_mu_);
  return AppendEventLocked(event);
}

absl::Status LabHostPlatform::AppendEventLocked(const HostEvent& event) {
  const std::string path = PathOf(kEventLogFile);
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, kPublicMode);
  if (fd < 0) return ErrnoStatus(errno, "cannot open", path);
  // One write() per line: appends of other writers do not interleave inside it.
  absl::Status status = WriteAll(fd, EventLine(event), path);
  if (::close(fd) != 0 && status.ok()) status = ErrnoStatus(errno, "cannot close", path);
  return status;
}

absl::Status LabHostPlatform::SetRestartFault(const RestartFault& fault) {
  absl::MutexLock lock(&files_mu_);
  if (fault.kind == RestartFault::Kind::kNone) {
    const std::string path = PathOf(kFaultFile);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, "cannot remove", path);
    }
    return absl::OkStatus();
  }
  return WriteFileAtomically(PathOf("Faults"), "HealthService.json", FaultJson(fault), kPublicMode);
}

}  // namespace certfleet::agent::platform
