#include "paseto/trusted_keys.hpp"

#include "paseto/paserk.hpp"

namespace seatledger::paseto {

std::string trusted_keys::add(const public_key& key) {
  auto pid = paserk_pid(key);
  keys_.insert_or_assign(pid, key);
  return pid;
}

result<std::string> trusted_keys::add_pem(std::string_view pem) {
  auto key = public_key_from_pem(pem);
  if (!key)
    return key.error();
  return add(*key);
}

result<std::string> trusted_keys::add_pem_file(const std::string& path) {
  auto key = load_public_key_pem_file(path);
  if (!key)
    return key.error();
  return add(*key);
}

const public_key* trusted_keys::find(std::string_view pid) const {
  auto i = keys_.find(pid);
  return i != keys_.end() ? &i->second : nullptr;
}

std::vector<std::string> trusted_keys::key_ids() const {
  std::vector<std::string> out;
  out.reserve(keys_.size());
  for (const auto& entry : keys_)
    out.push_back(entry.first);
  return out;
}

} // namespace seatledger::paseto
