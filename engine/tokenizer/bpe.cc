#include "engine/tokenizer/bpe.h"

#include <queue>

namespace chai::engine {

void BpeMerger::AddMerge(int32_t left, int32_t right, int32_t rank, int32_t result) {
  auto [it, inserted] = merges_.try_emplace(Key(left, right), Merge{rank, result});
  if (!inserted && rank < it->second.rank) it->second = Merge{rank, result};
}

const BpeMerger::Merge* BpeMerger::Find(int32_t left, int32_t right) const {
  if (left < 0 || right < 0) return nullptr;
  auto it = merges_.find(Key(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeMerger::Apply(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& ids = *symbols;
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  // Doubly linked list over positions; merged-away positions are marked dead.
  std::vector<int> prev(n), next(n);
  std::vector<uint8_t> dead(n, 0);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int left;         // position of the left symbol
    int32_t left_id;  // ids when queued: stale entries are skipped
    int32_t right_id;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : left > o.left;
    }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto push = [&](int left) {
    if (left < 0) return;
    const int right = next[left];
    if (right < 0) return;
    if (const Merge* m = Find(ids[left], ids[right])) {
      queue.push(Candidate{m->rank, left, ids[left], ids[right]});
    }
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    const int right = next[c.left];
    if (dead[c.left] || ids[c.left] != c.left_id || right < 0 || ids[right] != c.right_id) {
      continue;
    }
    ids[c.left] = Find(c.left_id, c.right_id)->result;
    dead[right] = 1;
    next[c.left] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.left;
    push(prev[c.left]);
    push(c.left);
  }
  int out = 0;
  for (int i = 0; i < n; ++i) {
    if (!dead[i]) ids[out++] = ids[i];
  }
  ids.resize(out);
}

}  // namespace chai::engine
