#include "adapters/kafka/offset_copies.hpp"

namespace seatledger::kafka {

namespace {

std::vector<storage::position>
as_positions(const std::map<storage::topic_partition, std::int64_t>& offsets) {
  std::vector<storage::position> result;
  result.reserve(offsets.size());
  for (const auto& [tp, offset] : offsets)
    result.push_back({tp, offset});
  return result;
}

} // namespace

std::optional<std::string_view> join_state_entered(std::string_view facility,
                                                   std::string_view message) {
  if (facility != "CGRPJOINSTATE")
    return std::nullopt;
  constexpr std::string_view marker = "changed join state ";
  auto at = message.find(marker);
  if (at == std::string_view::npos)
    return std::nullopt;
  constexpr std::string_view arrow = " -> ";
  auto to = message.find(arrow, at + marker.size());
  if (to == std::string_view::npos)
    return std::nullopt;
  auto begin = to + arrow.size();
  auto end = message.find(' ', begin);
  auto state = message.substr(begin, end == std::string_view::npos
                                       ? std::string_view::npos
                                       : end - begin);
  if (state.empty())
    return std::nullopt;
  return state;
}

void offset_copies::on_join_state(std::string_view state) {
  std::lock_guard<std::mutex> guard{mutex_};
  steady_ = state == "steady";
}

void offset_copies::on_rebalance() {
  std::lock_guard<std::mutex> guard{mutex_};
  steady_ = false;
}

void offset_copies::forget(
  const std::vector<storage::topic_partition>& partitions) {
  std::lock_guard<std::mutex> guard{mutex_};
  for (const auto& tp : partitions) {
    held_.erase(tp);
    last_.erase(tp);
  }
}

std::vector<storage::position>
offset_copies::offer(const std::vector<storage::position>& positions) {
  std::lock_guard<std::mutex> guard{mutex_};
  for (const auto& p : positions) {
    held_[p.tp] = p.next_offset;
    last_[p.tp] = p.next_offset;
  }
  if (!steady_)
    return {};
  auto result = as_positions(held_);
  held_.clear();
  return result;
}

std::vector<storage::position> offset_copies::offer_again() const {
  std::lock_guard<std::mutex> guard{mutex_};
  if (!steady_)
    return {};
  return as_positions(last_);
}

std::size_t offset_copies::held() const {
  std::lock_guard<std::mutex> guard{mutex_};
  return held_.size();
}

} // namespace seatledger::kafka
