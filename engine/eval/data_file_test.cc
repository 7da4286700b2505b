// bz2 reading: round trips, multi-stream files, and hostile input.
#include "engine/eval/data_file.h"

#include <bzlib.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>

#include "gtest/gtest.h"

namespace chai::engine::eval {
namespace {

std::string Compress(const std::string& text) {
  std::string out(text.size() + text.size() / 100 + 1024, '\0');
  unsigned int len = static_cast<unsigned int>(out.size());
  int rc = BZ2_bzBuffToBuffCompress(out.data(), &len, const_cast<char*>(text.data()),
                                    static_cast<unsigned int>(text.size()), 9, 0, 0);
  EXPECT_EQ(rc, BZ_OK);
  out.resize(len);
  return out;
}

std::string RandomText(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, ' ');
  for (char& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

TEST(DecompressBz2, RoundTrip) {
  const std::string text = RandomText(300000, 1);
  absl::StatusOr<std::string> out = DecompressBz2(Compress(text), 1 << 20);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, text);
}

TEST(DecompressBz2, ConcatenatedStreams) {
  absl::StatusOr<std::string> out = DecompressBz2(Compress("hello ") + Compress("world"), 100);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, "hello world");
}

TEST(DecompressBz2, TruncatedStreamIsDataLoss) {
  const std::string z = Compress(RandomText(5000, 2));
  for (size_t cut : {size_t{0}, size_t{3}, size_t{10}, z.size() / 2, z.size() - 1}) {
    EXPECT_EQ(DecompressBz2(z.substr(0, cut), 1 << 20).status().code(), absl::StatusCode::kDataLoss)
        << "cut at " << cut;
  }
}

TEST(DecompressBz2, CorruptOrTrailingBytesAreDataLoss) {
  std::string z = Compress(RandomText(5000, 3));
  std::string flipped = z;
  flipped[flipped.size() / 2] ^= 0x55;
  EXPECT_EQ(DecompressBz2(flipped, 1 << 20).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecompressBz2(z + "garbage", 1 << 20).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(DecompressBz2("not bz2 at all", 1 << 20).status().code(), absl::StatusCode::kDataLoss);
}

TEST(DecompressBz2, StopsAtTheCap) {
  // 10 MB of one byte compresses to a few hundred bytes: a small bomb.
  const std::string z = Compress(std::string(10 << 20, 'x'));
  EXPECT_LT(z.size(), 10000u);
  EXPECT_EQ(DecompressBz2(z, 1 << 20).status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(ReadDataFile, PlainCompressedAndMissing) {
  const std::string dir = ::testing::TempDir();
  const std::string plain = dir + "/eval_data_file_test.txt";
  const std::string packed = dir + "/eval_data_file_test2.txt.bz2";
  std::ofstream(plain, std::ios::binary) << "line one\nline two\n";
  std::ofstream(packed, std::ios::binary) << Compress("packed text");
  absl::StatusOr<std::string> a = ReadDataFile(plain);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a, "line one\nline two\n");
  absl::StatusOr<std::string> b = ReadDataFile(packed);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b, "packed text");
  EXPECT_EQ(ReadDataFile(plain, 5).status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ReadDataFile(dir + "/no_such_file").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ReadDataFile(dir).status().code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::string> found = FindDataFile(dir, "eval_data_file_test2.txt");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, packed);
  EXPECT_EQ(FindDataFile(dir, "absent.txt").status().code(), absl::StatusCode::kNotFound);
  std::remove(plain.c_str());
  std::remove(packed.c_str());
}

}  // namespace
}  // namespace chai::engine::eval
