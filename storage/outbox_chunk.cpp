#include "storage/outbox_chunk.hpp"

#include <algorithm>
#include <cstdint>

namespace seatledger::storage {

namespace {

constexpr std::string_view magic = "SLO1";

void put_u32(std::string& out, std::uint32_t x) {
  for (int i = 0; i < 4; ++i)
    out.push_back(static_cast<char>((x >> (8 * i)) & 0xff));
}

void put_str(std::string& out, std::string_view s) {
  put_u32(out, static_cast<std::uint32_t>(s.size()));
  out.append(s.data(), s.size());
}

class reader {
public:
  explicit reader(std::string_view in) : in_(in) {}

  bool u32(std::uint32_t& x) {
    if (in_.size() - pos_ < 4)
      return false;
    x = 0;
    for (int i = 0; i < 4; ++i)
      x |= static_cast<std::uint32_t>(static_cast<unsigned char>(in_[pos_ + i]))
           << (8 * i);
    pos_ += 4;
    return true;
  }

  bool str(std::string& s) {
    std::uint32_t n = 0;
    if (!u32(n) || in_.size() - pos_ < n)
      return false;
    s.assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }

  bool done() const {
    return pos_ == in_.size();
  }

  bool skip(std::string_view prefix) {
    if (in_.substr(pos_, prefix.size()) != prefix)
      return false;
    pos_ += prefix.size();
    return true;
  }

private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

} // namespace

std::string encode_outbox_chunk(const std::vector<const outbox_row*>& rows) {
  std::size_t size = 8;
  for (const auto* r : rows)
    size += 20 + r->event_id.size() + r->topic.size() + r->key.size()
            + r->value.size() + 64 * r->headers.size();
  std::string out;
  out.reserve(size);
  out.append(magic.data(), magic.size());
  put_u32(out, static_cast<std::uint32_t>(rows.size()));
  for (const auto* r : rows) {
    put_str(out, r->event_id);
    put_str(out, r->topic);
    put_str(out, r->key);
    put_str(out, r->value);
    put_u32(out, static_cast<std::uint32_t>(r->headers.size()));
    for (const auto& [name, value] : r->headers) {
      put_str(out, name);
      put_str(out, value);
    }
  }
  return out;
}

std::optional<std::vector<outbox_row>>
decode_outbox_chunk(std::string_view chunk, const std::string& lease_key) {
  reader in{chunk};
  std::uint32_t count = 0;
  if (!in.skip(magic) || !in.u32(count))
    return std::nullopt;
  std::vector<outbox_row> rows;
  // A record takes at least 20 bytes: a corrupt count cannot allocate more.
  rows.reserve(std::min<std::size_t>(count, chunk.size() / 20));
  for (std::uint32_t i = 0; i < count; ++i) {
    outbox_row r;
    std::uint32_t headers = 0;
    if (!in.str(r.event_id) || !in.str(r.topic) || !in.str(r.key)
        || !in.str(r.value) || !in.u32(headers))
      return std::nullopt;
    for (std::uint32_t h = 0; h < headers; ++h) {
      std::string name;
      std::string value;
      if (!in.str(name) || !in.str(value))
        return std::nullopt;
      r.headers.emplace_back(std::move(name), std::move(value));
    }
    r.lease_key = lease_key;
    rows.push_back(std::move(r));
  }
  if (!in.done())
    return std::nullopt;
  return rows;
}

} // namespace seatledger::storage
