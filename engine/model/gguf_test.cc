// Tests for the GGUF reader: one test per malformed-file class of DESIGN.md
// section 7 that concerns the container, each building its bad bytes with
// GgufBuilder, plus positive tests of every getter and the real default model.
#include "engine/model/gguf.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/model/testing/gguf_builder.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::chai::engine::testing::EncodeF32;
using ::chai::engine::testing::GgufBuilder;
using ::chai::engine::testing::GgufLayout;
using ::chai::engine::testing::GgufTensorSpec;
using ::chai::engine::testing::PutString;
using ::chai::engine::testing::PutU32;
using ::chai::engine::testing::PutU64;
using ::chai::kernels::DType;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr uint32_t kArrayTag = static_cast<uint32_t>(GgufValueType::kArray);
constexpr uint32_t kStringTag = static_cast<uint32_t>(GgufValueType::kString);
constexpr uint32_t kU8Tag = static_cast<uint32_t>(GgufValueType::kUint8);
constexpr uint32_t kU64Tag = static_cast<uint32_t>(GgufValueType::kUint64);
constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();

// Parses `bytes` and checks it fails with `code` and a message containing
// `substr`; the AssertionResult carries the actual status on mismatch.
::testing::AssertionResult FailsWith(const std::string& bytes, absl::StatusCode code,
                                     absl::string_view substr, const GgufLimits& limits = {}) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f =
      GgufFile::FromBuffer(absl::string_view(bytes), limits);
  if (f.ok()) return ::testing::AssertionFailure() << "parsed OK, expected an error";
  const absl::Status& s = f.status();
  if (s.code() != code || !absl::StrContains(s.message(), substr)) {
    return ::testing::AssertionFailure()
           << "got " << s << "; want code " << absl::StatusCodeToString(code)
           << " and message containing '" << std::string(substr) << "'";
  }
  return ::testing::AssertionSuccess();
}

// A parsed file together with the bytes it borrows: FromBuffer does not copy,
// so the bytes must outlive the GgufFile (ASan caught a test that let a
// temporary die first).
struct Parsed {
  std::unique_ptr<std::string> bytes;
  std::unique_ptr<GgufFile> file;
  const GgufFile* operator->() const { return file.get(); }
  explicit operator bool() const { return file != nullptr; }
  const uint8_t* base() const { return reinterpret_cast<const uint8_t*>(bytes->data()); }
};

Parsed ParseOk(std::string bytes) {
  Parsed p{std::make_unique<std::string>(std::move(bytes)), nullptr};
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::FromBuffer(absl::string_view(*p.bytes));
  EXPECT_TRUE(f.ok()) << f.status();
  if (f.ok()) p.file = *std::move(f);
  return p;
}

std::vector<float> Iota(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = static_cast<float>(i);
  return v;
}

// A small valid file with metadata and tensors of several types. Its last
// tensor is 32 bytes at a 32-aligned offset, so the file has no tail padding
// and every proper prefix of it is truncated in a way that matters.
GgufBuilder SmallValid() {
  GgufBuilder b;
  b.AddString("general.architecture", "llama")
      .AddU32("llama.block_count", 2)
      .AddF32("llama.rope.freq_base", 10000.0f)
      .AddBool("tokenizer.ggml.add_bos_token", true)
      .AddStringArray("tokenizer.ggml.tokens", {"<s>", "</s>", "a"})
      .AddI32Array("tokenizer.ggml.token_type", {3, 3, 1});
  b.AddTensorF32("a.weight", {8}, Iota(8))         // 32 bytes
      .AddTensor("b.weight", DType::kF16, {4, 2})  // 16 bytes + 16 padding
      .AddTensor("c.weight", DType::kQ8_0, {32})   // 34 bytes + 30 padding
      .AddTensorF32("d.weight", {4, 2}, Iota(8));  // 32 bytes, ends the file
  return b;
}

// ---- whole-file structure ----

TEST(GgufTest, SmallValidFileParses) {
  GgufLayout layout;
  const std::string bytes = SmallValid().Build(&layout);
  Parsed f = ParseOk(bytes);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  ASSERT_EQ(f->tensors().size(), 4u);
  EXPECT_THAT(layout.offsets, ElementsAre(0, 32, 64, 128));
  EXPECT_EQ(layout.size, layout.data_start + 160);
  EXPECT_EQ(layout.size, bytes.size());
}

TEST(GgufTest, TruncatedAtEveryByteIsDataLoss) {
  const std::string full = SmallValid().Build();
  for (size_t n = 0; n < full.size(); ++n) {
    // A fresh copy of the prefix so ASan sees reads past its end.
    const std::string prefix = full.substr(0, n);
    EXPECT_TRUE(FailsWith(prefix, absl::StatusCode::kDataLoss, "")) << "prefix of " << n;
  }
  EXPECT_TRUE(ParseOk(full));
}

TEST(GgufTest, BadMagic) {
  EXPECT_TRUE(FailsWith(GgufBuilder().set_magic(0x46554746).Build(),
                        absl::StatusCode::kInvalidArgument, "bad magic"));
  // Big-endian GGUF ("FUGG" read little-endian) is not supported either.
  EXPECT_TRUE(FailsWith(GgufBuilder().set_magic(0x47475546).Build(),
                        absl::StatusCode::kInvalidArgument, "bad magic"));
  EXPECT_TRUE(
      FailsWith("\x7f"
                "ELF",
                absl::StatusCode::kInvalidArgument, "bad magic"));
}

TEST(GgufTest, BadVersion) {
  for (uint32_t v : {0u, 1u, 2u, 4u, 0xFFFFFFFFu}) {
    SCOPED_TRACE(v);
    EXPECT_TRUE(FailsWith(SmallValid().set_version(v).Build(), absl::StatusCode::kInvalidArgument,
                          absl::StrCat("unsupported GGUF version ", v)));
  }
}

TEST(GgufTest, TensorCountLargerThanFile) {
  EXPECT_TRUE(FailsWith(SmallValid().set_tensor_count(1000).Build(), absl::StatusCode::kDataLoss,
                        "1000 tensors"));
  // A count the remaining bytes could hold in principle: the record loop
  // runs into the end of the file instead.
  EXPECT_TRUE(FailsWith(GgufBuilder()
                            .AddString("k", std::string(40, 'x'))
                            .set_tensor_count(1)
                            .set_pad_tail(false)
                            .Build(),
                        absl::StatusCode::kDataLoss, "truncated while reading tensor name"));
}

TEST(GgufTest, KvCountLargerThanFile) {
  EXPECT_TRUE(FailsWith(SmallValid().set_kv_count(1000).Build(), absl::StatusCode::kDataLoss,
                        "1000 metadata entries"));
}

TEST(GgufTest, CountsOverCap) {
  const int64_t over = (1 << 16) + 1;
  EXPECT_TRUE(FailsWith(SmallValid().set_tensor_count(over).Build(),
                        absl::StatusCode::kInvalidArgument, "tensor count 65537 exceeds the cap"));
  EXPECT_TRUE(FailsWith(SmallValid().set_tensor_count(kU64Max).Build(),
                        absl::StatusCode::kInvalidArgument, "exceeds the cap"));
  EXPECT_TRUE(FailsWith(SmallValid().set_kv_count(over).Build(), absl::StatusCode::kInvalidArgument,
                        "metadata count 65537 exceeds the cap"));
  EXPECT_TRUE(FailsWith(SmallValid().set_kv_count(kU64Max).Build(),
                        absl::StatusCode::kInvalidArgument, "exceeds the cap"));
  GgufLimits tight;
  tight.max_tensor_count = 3;
  EXPECT_TRUE(FailsWith(SmallValid().Build(), absl::StatusCode::kInvalidArgument,
                        "tensor count 4 exceeds the cap 3", tight));
}

// ---- strings ----

TEST(GgufTest, KeyLengthLargerThanFile) {
  std::string kv;
  PutU64(&kv, 4096);  // under the cap, over the file
  kv += "general.name";
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKvBytes(kv).Build(), absl::StatusCode::kDataLoss,
                        "metadata key"));
}

TEST(GgufTest, StringValueLengthLargerThanFile) {
  std::string payload;
  PutU64(&payload, 1000);
  payload += "short";
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("general.name", kStringTag, payload).Build(),
                        absl::StatusCode::kDataLoss, "string value"));
}

TEST(GgufTest, StringLengthsOverCap) {
  for (uint64_t len : {uint64_t{(1 << 20) + 1}, uint64_t{1} << 63, kU64Max}) {
    SCOPED_TRACE(len);
    std::string kv;
    PutU64(&kv, len);
    kv += "k";
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKvBytes(kv).Build(),
                          absl::StatusCode::kInvalidArgument, "metadata key length"));
    std::string payload;
    PutU64(&payload, len);
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("k", kStringTag, payload).Build(),
                          absl::StatusCode::kInvalidArgument, "string value length"));
  }
  // The cap applies even when the bytes are all there.
  GgufLimits tight;
  tight.max_string_bytes = 8;
  EXPECT_TRUE(FailsWith(GgufBuilder().AddString("k", "123456789").Build(),
                        absl::StatusCode::kInvalidArgument, "exceeds the cap of 8", tight));
  EXPECT_TRUE(ParseOk(GgufBuilder().AddString("k", "12345678").Build()));
}

TEST(GgufTest, TensorNameOverCapOrLongerThanFile) {
  GgufTensorSpec spec{.name = std::string(257, 'x'), .type = 0, .dims = {8}};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(spec).Build(),
                        absl::StatusCode::kInvalidArgument, "tensor name length 257"));
  GgufTensorSpec lying{.name = "t", .type = 0, .dims = {8}, .name_length = 200};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(lying).Build(), absl::StatusCode::kDataLoss,
                        "tensor name"));
}

TEST(GgufTest, StringArrayElementLengthLargerThanFile) {
  std::string payload;
  PutU32(&payload, kStringTag);
  PutU64(&payload, 2);
  PutString(&payload, "ok");
  PutU64(&payload, 5000);  // second element runs off the end
  payload += "abc";
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("toks", kArrayTag, payload).Build(),
                        absl::StatusCode::kDataLoss, "array string"));
}

// ---- arrays ----

TEST(GgufTest, ArrayLengthHuge) {
  for (uint64_t count : {uint64_t{(1 << 24) + 1}, uint64_t{1} << 62, kU64Max}) {
    SCOPED_TRACE(count);
    std::string payload;
    PutU32(&payload, kU64Tag);
    PutU64(&payload, count);
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("arr", kArrayTag, payload).Build(),
                          absl::StatusCode::kInvalidArgument, "exceeds the cap"));
  }
  // Under the cap but over the file: u64 elements and string elements.
  for (uint32_t elem : {kU64Tag, kStringTag}) {
    std::string payload;
    PutU32(&payload, elem);
    PutU64(&payload, 1 << 24);
    payload.append(64, '\0');
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("arr", kArrayTag, payload).Build(),
                          absl::StatusCode::kDataLoss, "array"));
  }
}

TEST(GgufTest, UnknownArrayElementType) {
  for (uint32_t elem : {13u, 1000u, 0xFFFFFFFFu}) {
    std::string payload;
    PutU32(&payload, elem);
    PutU64(&payload, 0);
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("arr", kArrayTag, payload).Build(),
                          absl::StatusCode::kInvalidArgument,
                          absl::StrCat("unsupported array element type ", elem)));
  }
}

TEST(GgufTest, NestedArrayRejected) {
  // An array of arrays (llama.cpp's CVE-2024-25664 area): rejected outright
  // even when empty.
  std::string payload;
  PutU32(&payload, kArrayTag);
  PutU64(&payload, 0);
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("nested", kArrayTag, payload).Build(),
                        absl::StatusCode::kInvalidArgument, "unsupported array element type 9"));
}

// ---- keys and values ----

TEST(GgufTest, EmptyKey) {
  EXPECT_TRUE(FailsWith(GgufBuilder().AddU32("", 1).Build(), absl::StatusCode::kInvalidArgument,
                        "key is empty"));
}

TEST(GgufTest, DuplicateKey) {
  EXPECT_TRUE(FailsWith(SmallValid().AddU32("llama.block_count", 3).Build(),
                        absl::StatusCode::kInvalidArgument,
                        "duplicate metadata key 'llama.block_count'"));
  // Same key with another type is still a duplicate.
  EXPECT_TRUE(FailsWith(GgufBuilder().AddString("k", "a").AddF32("k", 1).Build(),
                        absl::StatusCode::kInvalidArgument, "duplicate metadata key 'k'"));
}

TEST(GgufTest, UnknownMetadataValueType) {
  for (uint32_t type : {13u, 255u, 0xFFFFFFFFu}) {
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("k", type, std::string(8, '\0')).Build(),
                          absl::StatusCode::kInvalidArgument,
                          absl::StrCat("'k' has unknown value type ", type)));
  }
}

TEST(GgufTest, BoolOtherThanZeroOrOneRejected) {
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("b", 7, std::string(1, '\x02')).Build(),
                        absl::StatusCode::kInvalidArgument, "bool 'b' is neither 0 nor 1"));
  std::string payload;
  PutU32(&payload, 7);
  PutU64(&payload, 3);
  payload += std::string("\x00\x01\xff", 3);
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawKv("bs", kArrayTag, payload).Build(),
                        absl::StatusCode::kInvalidArgument, "bool array 'bs'"));
}

// ---- alignment ----

TEST(GgufTest, AlignmentNotAPowerOfTwo) {
  for (uint32_t a : {0u, 3u, 48u, 100u, 0xFFFFFFFFu, (1u << 21)}) {
    SCOPED_TRACE(a);
    EXPECT_TRUE(FailsWith(SmallValid().AddU32("general.alignment", a).Build(),
                          absl::StatusCode::kInvalidArgument,
                          absl::StrCat("general.alignment ", a, " is not a power of two")));
  }
}

TEST(GgufTest, AlignmentOfWrongType) {
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_TRUE(FailsWith(SmallValid().AddU64("general.alignment", 32).Build(), kInvalid,
                        "general.alignment has type 10, expected uint32"));
  EXPECT_TRUE(
      FailsWith(SmallValid().AddI32("general.alignment", 32).Build(), kInvalid, "expected uint32"));
  EXPECT_TRUE(FailsWith(SmallValid().AddBool("general.alignment", true).Build(), kInvalid,
                        "expected uint32"));
  EXPECT_TRUE(
      FailsWith(SmallValid().AddF32("general.alignment", 32).Build(), kInvalid, "expected uint32"));
  EXPECT_TRUE(FailsWith(SmallValid().AddString("general.alignment", "32").Build(), kInvalid,
                        "expected uint32"));
  EXPECT_TRUE(FailsWith(SmallValid().AddU32Array("general.alignment", {32}).Build(), kInvalid,
                        "expected uint32"));
}

TEST(GgufTest, CustomAlignmentLaysOutAndParses) {
  for (uint32_t a : {1u, 8u, 64u, 4096u}) {
    SCOPED_TRACE(a);
    GgufBuilder b;
    b.SetAlignment(a);
    b.AddTensorF32("x", {3}, {1, 2, 3}).AddTensorF32("y", {5}, Iota(5));
    GgufLayout layout;
    const std::string bytes = b.Build(&layout);
    Parsed f = ParseOk(bytes);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->alignment(), a);
    EXPECT_EQ(layout.data_start % a, 0u);
    const GgufTensorInfo* y = f->FindTensor("y");
    ASSERT_NE(y, nullptr);
    EXPECT_EQ(y->offset, (12 + a - 1) / a * a);
    EXPECT_EQ(y->data, f.base() + layout.data_start + y->offset);
  }
}

TEST(GgufTest, OffsetAlignedTo32ButNotTo64Rejected) {
  // Written with the default 32 layout, declared 64: the second tensor's
  // offset 32 is misaligned for the declared alignment.
  GgufBuilder b;
  b.AddU32("general.alignment", 64);
  b.AddTensorF32("x", {8}, Iota(8)).AddTensorF32("y", {8}, Iota(8));
  EXPECT_TRUE(
      FailsWith(b.Build(), absl::StatusCode::kInvalidArgument, "'y' offset is not aligned to 64"));
}

// ---- tensor infos ----

TEST(GgufTest, EmptyTensorName) {
  EXPECT_TRUE(FailsWith(GgufBuilder().AddTensorF32("", {1}, {1}).Build(),
                        absl::StatusCode::kInvalidArgument, "tensor name is empty"));
}

TEST(GgufTest, DuplicateTensorName) {
  EXPECT_TRUE(FailsWith(SmallValid().AddTensorF32("b.weight", {8}, Iota(8)).Build(),
                        absl::StatusCode::kInvalidArgument, "duplicate tensor name 'b.weight'"));
}

TEST(GgufTest, UnknownTensorType) {
  // 4 and 5 are GGML's removed Q4_2/Q4_3, 10 is Q2_K (real but unsupported
  // here), 31+ do not exist.
  for (uint32_t type : {4u, 5u, 10u, 31u, 1000u, 0xFFFFFFFFu}) {
    GgufTensorSpec spec{.name = "t", .type = type, .dims = {256}, .data = std::string(1024, '\0')};
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(spec).Build(),
                          absl::StatusCode::kInvalidArgument,
                          absl::StrCat("'t' has unsupported type ", type)));
  }
}

TEST(GgufTest, NDimsZeroOrOverFour) {
  GgufTensorSpec zero{.name = "t", .type = 0, .dims = {}, .data = std::string(4, '\0')};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(zero).Build(),
                        absl::StatusCode::kInvalidArgument, "'t' has 0 dims (1..4 allowed)"));
  GgufTensorSpec five{
      .name = "t", .type = 0, .dims = {1, 1, 1, 1, 1}, .data = std::string(4, '\0')};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(five).Build(),
                        absl::StatusCode::kInvalidArgument, "'t' has 5 dims"));
  GgufTensorSpec huge{.name = "t", .type = 0, .dims = {1}, .n_dims = 0xFFFFFFFF};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(huge).Build(),
                        absl::StatusCode::kInvalidArgument, "4294967295 dims"));
  // Four is fine.
  EXPECT_TRUE(ParseOk(GgufBuilder().AddTensorF32("t", {1, 2, 1, 2}, Iota(4)).Build()));
}

TEST(GgufTest, ZeroDim) {
  GgufTensorSpec spec{.name = "t", .type = 0, .dims = {4, 0}};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(spec).Build(),
                        absl::StatusCode::kInvalidArgument, "'t' has an invalid or overflowing"));
}

TEST(GgufTest, ElementCountOverflow) {
  const uint64_t k2p40 = uint64_t{1} << 40;
  for (const std::vector<uint64_t>& dims :
       {std::vector<uint64_t>{k2p40, k2p40}, std::vector<uint64_t>{uint64_t{1} << 63},
        std::vector<uint64_t>{kU64Max},
        std::vector<uint64_t>{1 << 16, 1 << 16, 1 << 16, 1 << 16}}) {
    GgufTensorSpec spec{.name = "t", .type = 0, .dims = dims};
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(spec).Build(),
                          absl::StatusCode::kInvalidArgument, "invalid or overflowing shape"));
  }
}

TEST(GgufTest, ByteCountOverflow) {
  // Element counts fit int64, byte counts do not: one F32 row of 2^61
  // elements (2^63 bytes), and 4 rows of 2^62 bytes (2^64 in total).
  for (const std::vector<uint64_t>& dims :
       {std::vector<uint64_t>{uint64_t{1} << 61, 2}, std::vector<uint64_t>{uint64_t{1} << 60, 4}}) {
    GgufTensorSpec spec{.name = "t", .type = 0, .dims = dims};
    EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(spec).Build(),
                          absl::StatusCode::kInvalidArgument, "'t' byte size overflows"));
  }
  // Fits uint64 but not the file: outside, not overflow.
  GgufTensorSpec big{.name = "t", .type = 0, .dims = {uint64_t{1} << 40}};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(big).Build(), absl::StatusCode::kDataLoss,
                        "outside the file"));
}

TEST(GgufTest, RowNotMultipleOfBlockSize) {
  GgufTensorSpec q8{.name = "t", .type = static_cast<uint32_t>(DType::kQ8_0), .dims = {33, 2}};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(q8).Build(), absl::StatusCode::kInvalidArgument,
                        "row of 33 elements is not a multiple of the Q8_0 block size 32"));
  GgufTensorSpec q4k{.name = "t", .type = static_cast<uint32_t>(DType::kQ4_K), .dims = {128}};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(q4k).Build(), absl::StatusCode::kInvalidArgument,
                        "Q4_K block size 256"));
}

// ---- tensor data placement ----

TEST(GgufTest, TensorDataOutsideFile) {
  GgufTensorSpec far{.name = "t",
                     .type = 0,
                     .dims = {8},
                     .offset = uint64_t{1} << 30,
                     .data = std::string(32, '\0')};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(far).Build(), absl::StatusCode::kDataLoss,
                        "'t' data lies outside the file"));
  // offset + size wraps around 2^64.
  GgufTensorSpec wrap{.name = "t", .type = 0, .dims = {16}, .offset = kU64Max - 31};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(wrap).Build(), absl::StatusCode::kDataLoss,
                        "outside the file"));
  // Data one byte short: declared 8 floats, 31 bytes present, no padding.
  GgufTensorSpec short_data{.name = "t", .type = 0, .dims = {8}, .data = std::string(31, '\0')};
  EXPECT_TRUE(FailsWith(GgufBuilder().AddRawTensor(short_data).set_pad_tail(false).Build(),
                        absl::StatusCode::kDataLoss, "outside the file"));
}

TEST(GgufTest, OverlappingTensors) {
  GgufBuilder b;
  b.AddTensorF32("a", {16}, Iota(16));  // bytes [0, 64)
  b.AddRawTensor({.name = "b", .type = 0, .dims = {8}, .offset = 32});
  EXPECT_TRUE(FailsWith(b.Build(), absl::StatusCode::kInvalidArgument,
                        "'b' overlaps another tensor's data"));
  // Two tensors aliasing the same bytes.
  GgufBuilder c;
  c.AddTensorF32("a", {8}, Iota(8));
  c.AddRawTensor({.name = "b", .type = 0, .dims = {8}, .offset = 0});
  EXPECT_TRUE(FailsWith(c.Build(), absl::StatusCode::kInvalidArgument, "overlaps"));
}

TEST(GgufTest, MisalignedOffset) {
  GgufBuilder b;
  b.AddTensorF32("a", {1}, {1});
  b.AddRawTensor({.name = "b", .type = 0, .dims = {1}, .offset = 4, .data = EncodeF32({2})});
  EXPECT_TRUE(
      FailsWith(b.Build(), absl::StatusCode::kInvalidArgument, "'b' offset is not aligned to 32"));
}

// Gap policy (gguf.cc): only alignment padding may separate tensors from each
// other, from the start of the data section and from the end of the file.
TEST(GgufTest, GapBetweenTensorsRejected) {
  GgufBuilder b;
  b.AddTensorF32("a", {1}, {1});  // [0, 4), then 28 bytes of padding
  b.AddRawTensor({.name = "b", .type = 0, .dims = {1}, .offset = 64, .data = EncodeF32({2})});
  EXPECT_TRUE(FailsWith(b.Build(), absl::StatusCode::kInvalidArgument,
                        "'b' starts 60 bytes after the previous tensor's data"));
}

TEST(GgufTest, GapBeforeFirstTensorRejected) {
  GgufBuilder b;
  b.AddRawTensor({.name = "a", .type = 0, .dims = {1}, .offset = 32, .data = EncodeF32({1})});
  EXPECT_TRUE(
      FailsWith(b.Build(), absl::StatusCode::kInvalidArgument, "'a' starts 32 bytes after"));
}

TEST(GgufTest, TrailingBytesAfterLastTensor) {
  // 4 data bytes + 28 padding: 31 extra bytes is the most padding can explain.
  GgufBuilder b;
  b.AddTensorF32("a", {1}, {1}).set_pad_tail(false).set_trailing_bytes(31);
  EXPECT_TRUE(ParseOk(b.Build()));
  b.set_trailing_bytes(32);
  EXPECT_TRUE(FailsWith(b.Build(), absl::StatusCode::kInvalidArgument,
                        "32 bytes after the last tensor's data"));
}

TEST(GgufTest, PaddingIsNotAGap) {
  // Padding after each tensor (the llama.cpp layout), tensors listed out of
  // offset order, and a missing final padding are all accepted.
  GgufBuilder b;
  b.AddTensorF32("a", {1}, {1});        // [0, 4)
  b.AddTensorF32("b", {3}, {1, 2, 3});  // [32, 44)
  b.AddRawTensor({.name = "d", .type = 0, .dims = {5}, .offset = 96, .data = EncodeF32(Iota(5))});
  b.AddRawTensor({.name = "c", .type = 0, .dims = {2}, .offset = 64, .data = EncodeF32({7, 8})});
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  EXPECT_EQ(f->FindTensor("c")->offset, 64u);
  EXPECT_TRUE(ParseOk(b.set_pad_tail(false).Build()));
}

// ---- metadata getters ----

TEST(GgufTest, GetIntFromEveryIntegerType) {
  GgufBuilder b;
  b.AddU8("u8", 200).AddI8("i8", -100).AddU16("u16", 60000).AddI16("i16", -30000);
  b.AddU32("u32", 4000000000u).AddI32("i32", -2000000000).AddU64("u64", uint64_t{1} << 62);
  b.AddI64("i64", std::numeric_limits<int64_t>::min());
  b.AddU64("u64max", std::numeric_limits<int64_t>::max());
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  EXPECT_EQ(*f->GetInt("u8"), 200);
  EXPECT_EQ(*f->GetInt("i8"), -100);
  EXPECT_EQ(*f->GetInt("u16"), 60000);
  EXPECT_EQ(*f->GetInt("i16"), -30000);
  EXPECT_EQ(*f->GetInt("u32"), 4000000000);
  EXPECT_EQ(*f->GetInt("i32"), -2000000000);
  EXPECT_EQ(*f->GetInt("u64"), int64_t{1} << 62);
  EXPECT_EQ(*f->GetInt("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(*f->GetInt("u64max"), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(*f->GetType("u16"), GgufValueType::kUint16);
  EXPECT_EQ(*f->GetType("i64"), GgufValueType::kInt64);
}

TEST(GgufTest, GetIntRejectsU64OverInt64Max) {
  GgufBuilder b;
  b.AddU64("big", uint64_t{1} << 63).AddU64("max", kU64Max);
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  for (const char* key : {"big", "max"}) {
    absl::StatusOr<int64_t> v = f->GetInt(key);
    EXPECT_EQ(v.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(v.status().message()), HasSubstr("does not fit in int64"));
  }
}

TEST(GgufTest, GetFloat) {
  GgufBuilder b;
  b.AddF32("f32", 1e-5f).AddF64("f64", 1e300).AddU32("u32", 7).AddI8("i8", -3);
  b.AddF32("nan", std::nanf("")).AddBool("flag", true).AddString("s", "1.0");
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  EXPECT_EQ(*f->GetFloat("f32"), static_cast<double>(1e-5f));
  EXPECT_EQ(*f->GetFloat("f64"), 1e300);
  // Integers widen to double (e.g. a rope base stored as an int).
  EXPECT_EQ(*f->GetFloat("u32"), 7.0);
  EXPECT_EQ(*f->GetFloat("i8"), -3.0);
  // NaN is returned as-is: range checks belong to the config loader.
  EXPECT_TRUE(std::isnan(*f->GetFloat("nan")));
  EXPECT_EQ(f->GetFloat("flag").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->GetFloat("s").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(GgufTest, GetBoolAndString) {
  GgufBuilder b;
  b.AddBool("t", true).AddBool("f", false).AddString("s", "hello").AddString("empty", "");
  b.AddString("bin", std::string("a\0b", 3)).AddU8("one", 1);
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  EXPECT_TRUE(*f->GetBool("t"));
  EXPECT_FALSE(*f->GetBool("f"));
  EXPECT_EQ(*f->GetString("s"), "hello");
  EXPECT_EQ(*f->GetString("empty"), "");
  EXPECT_EQ(f->GetString("bin")->size(), 3u);
  EXPECT_EQ(*f->GetType("t"), GgufValueType::kBool);
  EXPECT_EQ(*f->GetType("s"), GgufValueType::kString);
}

TEST(GgufTest, GettersRejectWrongTypesAndMissingKeys) {
  GgufBuilder b;
  b.AddBool("flag", true).AddU8("one", 1).AddF32("f", 1.0f).AddString("s", "x");
  b.AddI32Array("ints", {1}).AddStringArray("strs", {"a"});
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  const absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
  // A bool is not an integer, nor an integer a bool.
  EXPECT_EQ(f->GetInt("flag").status().code(), kInvalid);
  EXPECT_EQ(f->GetBool("one").status().code(), kInvalid);
  EXPECT_EQ(f->GetInt("f").status().code(), kInvalid);
  EXPECT_EQ(f->GetInt("s").status().code(), kInvalid);
  EXPECT_EQ(f->GetInt("ints").status().code(), kInvalid);
  EXPECT_EQ(f->GetString("one").status().code(), kInvalid);
  EXPECT_EQ(f->GetString("strs").status().code(), kInvalid);
  EXPECT_EQ(f->GetStringArray("s").status().code(), kInvalid);
  EXPECT_EQ(f->GetStringArray("ints").status().code(), kInvalid);
  EXPECT_EQ(f->GetIntArray("strs").status().code(), kInvalid);
  EXPECT_EQ(f->GetIntArray("one").status().code(), kInvalid);
  EXPECT_EQ(f->GetFloatArray("ints").status().code(), kInvalid);
  EXPECT_THAT(std::string(f->GetString("one").status().message()), HasSubstr("'one'"));

  EXPECT_FALSE(f->Has("missing"));
  EXPECT_TRUE(f->Has("flag"));
  const absl::StatusCode kNotFound = absl::StatusCode::kNotFound;
  EXPECT_EQ(f->GetInt("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetFloat("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetBool("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetString("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetStringArray("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetIntArray("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetFloatArray("missing").status().code(), kNotFound);
  EXPECT_EQ(f->GetType("missing").status().code(), kNotFound);
  EXPECT_THAT(std::string(f->GetInt("missing").status().message()), HasSubstr("'missing'"));
}

TEST(GgufTest, StringArrays) {
  GgufBuilder b;
  b.AddStringArray("toks", {"<s>", "", "\xe2\x96\x81hello", std::string(1000, 'z')});
  b.AddStringArray("none", {});
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  absl::StatusOr<std::vector<absl::string_view>> toks = f->GetStringArray("toks");
  ASSERT_TRUE(toks.ok()) << toks.status();
  ASSERT_EQ(toks->size(), 4u);
  EXPECT_EQ((*toks)[0], "<s>");
  EXPECT_EQ((*toks)[1], "");
  EXPECT_EQ((*toks)[2], "\xe2\x96\x81hello");
  EXPECT_EQ((*toks)[3], std::string(1000, 'z'));
  EXPECT_TRUE(f->GetStringArray("none")->empty());
  EXPECT_EQ(*f->GetType("toks"), GgufValueType::kArray);
}

TEST(GgufTest, IntAndFloatArrays) {
  GgufBuilder b;
  b.AddI32Array("i32", {-1, 0, 2147483647}).AddU32Array("u32", {4000000000u});
  b.AddI64Array("i64", {std::numeric_limits<int64_t>::min()});
  b.AddF32Array("f32", {0.5f, -2.0f}).AddF64Array("f64", {0.25, 1e10});
  std::string u64s;
  PutU32(&u64s, kU64Tag);
  PutU64(&u64s, 2);
  PutU64(&u64s, 5);
  PutU64(&u64s, kU64Max);
  b.AddRawKv("u64_over", kArrayTag, u64s);
  std::string u8s;
  PutU32(&u8s, kU8Tag);
  PutU64(&u8s, 3);
  u8s += std::string("\x00\x7f\xff", 3);
  b.AddRawKv("u8", kArrayTag, u8s);
  Parsed f = ParseOk(b.Build());
  ASSERT_TRUE(f);
  EXPECT_THAT(*f->GetIntArray("i32"), ElementsAre(-1, 0, 2147483647));
  EXPECT_THAT(*f->GetIntArray("u32"), ElementsAre(4000000000));
  EXPECT_THAT(*f->GetIntArray("i64"), ElementsAre(std::numeric_limits<int64_t>::min()));
  EXPECT_THAT(*f->GetIntArray("u8"), ElementsAre(0, 127, 255));
  EXPECT_THAT(*f->GetFloatArray("f32"), ElementsAre(0.5f, -2.0f));
  EXPECT_THAT(*f->GetFloatArray("f64"), ElementsAre(0.25f, 1e10f));
  absl::StatusOr<std::vector<int64_t>> over = f->GetIntArray("u64_over");
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(over.status().message()), HasSubstr("'u64_over' element 1"));
  // Float arrays are not integer arrays and vice versa.
  EXPECT_EQ(f->GetIntArray("f32").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(f->GetFloatArray("i32").status().code(), absl::StatusCode::kInvalidArgument);
}

// ---- tensors ----

TEST(GgufTest, FindTensorAndDataPointers) {
  GgufLayout layout;
  const std::string bytes = SmallValid().Build(&layout);
  Parsed f = ParseOk(bytes);
  ASSERT_TRUE(f);
  EXPECT_EQ(f->FindTensor("missing"), nullptr);
  EXPECT_EQ(f->FindTensor("a.weigh"), nullptr);

  const GgufTensorInfo* b = f->FindTensor("b.weight");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b, &f->tensors()[1]);
  EXPECT_EQ(b->dtype, DType::kF16);
  EXPECT_THAT(b->dims, ElementsAre(4, 2));
  EXPECT_EQ(b->n_elements, 8);
  EXPECT_EQ(b->n_bytes, 16u);
  EXPECT_EQ(b->offset, 32u);

  const GgufTensorInfo* c = f->FindTensor("c.weight");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->dtype, DType::kQ8_0);
  EXPECT_EQ(c->n_bytes, 34u);

  const GgufTensorInfo* d = f->FindTensor("d.weight");
  ASSERT_NE(d, nullptr);
  EXPECT_THAT(d->dims, ElementsAre(4, 2));
  const uint8_t* base = f.base();
  EXPECT_EQ(d->data, base + layout.data_start + 128);
  // The last tensor's last byte is the file's last byte.
  EXPECT_EQ(d->data + d->n_bytes, base + bytes.size());
  std::vector<float> values(8);
  std::memcpy(values.data(), d->data, 32);
  EXPECT_EQ(values, Iota(8));
}

TEST(GgufTest, NoTensorsIsValid) {
  Parsed f = ParseOk(GgufBuilder().AddString("k", "v").Build());
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_EQ(*f->GetString("k"), "v");
  // The header alone, 24 bytes, no padding.
  EXPECT_TRUE(ParseOk(GgufBuilder().set_pad_tail(false).Build()));
}

// ---- files ----

class GgufOpenTest : public ::testing::Test {
 protected:
  std::string TempPath(absl::string_view name) {
    return absl::StrCat(::testing::TempDir(), "/gguf_test_", getpid(), "_", name);
  }
  void WriteFile(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good()) << path;
    cleanup_.push_back(path);
  }
  void TearDown() override {
    for (const std::string& p : cleanup_) std::remove(p.c_str());
  }
  std::vector<std::string> cleanup_;
};

TEST_F(GgufOpenTest, MissingFile) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(TempPath("does_not_exist"));
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("does_not_exist"));
}

TEST_F(GgufOpenTest, Directory) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(::testing::TempDir());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("not a regular file"));
}

TEST_F(GgufOpenTest, EmptyFile) {
  const std::string path = TempPath("empty.gguf");
  WriteFile(path, "");
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("magic"));
}

TEST_F(GgufOpenTest, ValidAndTruncatedFiles) {
  const std::string bytes = SmallValid().Build();
  const std::string path = TempPath("valid.gguf");
  WriteFile(path, bytes);
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufTensorInfo* d = (*f)->FindTensor("d.weight");
  ASSERT_NE(d, nullptr);
  std::vector<float> values(8);
  std::memcpy(values.data(), d->data, 32);
  EXPECT_EQ(values, Iota(8));
  // Mapped data is aligned in memory, not just relative to the file.
  EXPECT_EQ(reinterpret_cast<uintptr_t>(d->data) % 32, 0u);

  const std::string cut = TempPath("cut.gguf");
  WriteFile(cut, bytes.substr(0, bytes.size() - 1));
  absl::StatusOr<std::unique_ptr<GgufFile>> g = GgufFile::Open(cut);
  EXPECT_EQ(g.status().code(), absl::StatusCode::kDataLoss);
  // Errors from Open name the file.
  EXPECT_THAT(std::string(g.status().message()), HasSubstr(cut));
}

// The fuzzer's seeds were written by gguf-py (tests/fuzz/make_gguf_seeds.py),
// so they double as an interoperability check with the reference writer.
TEST(GgufInteropTest, GgufPyWrittenSeedsParse) {
  const std::string dir = absl::StrCat(CHAI_SOURCE_DIR, "/tests/fuzz/gguf/");
  absl::StatusOr<std::unique_ptr<GgufFile>> llama = GgufFile::Open(dir + "tiny_llama.gguf");
  ASSERT_TRUE(llama.ok()) << llama.status();
  EXPECT_EQ((*llama)->tensors().size(), 7u);
  EXPECT_EQ(*(*llama)->GetInt("llama.attention.head_count_kv"), 1);
  EXPECT_THAT(*(*llama)->GetStringArray("tokenizer.ggml.tokens"),
              ElementsAre("<s>", "</s>", "a", "b",
                          "\xc4\xa0"
                          "a",
                          "ab"));
  const GgufTensorInfo* q = (*llama)->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kQ4_0);
  EXPECT_THAT(q->dims, ElementsAre(32, 32));

  absl::StatusOr<std::unique_ptr<GgufFile>> types = GgufFile::Open(dir + "every_type.gguf");
  ASSERT_TRUE(types.ok()) << types.status();
  const GgufFile& t = **types;
  EXPECT_EQ(*t.GetInt("t.u8"), 200);
  EXPECT_EQ(*t.GetInt("t.i16"), -30000);
  EXPECT_FALSE(t.GetInt("t.u64").ok());  // 2^63 + 5
  EXPECT_EQ(*t.GetFloat("t.f64"), 1e300);
  EXPECT_FALSE(*t.GetBool("t.bool"));
  EXPECT_EQ(*t.GetString("t.str"), "h\xc3\xa9llo");
  EXPECT_THAT(*t.GetStringArray("t.arr_str"), ElementsAre("", "x", "yz"));
  EXPECT_THAT(*t.GetIntArray("t.arr_u8"), ElementsAre(1, 2, 255));
  EXPECT_THAT(*t.GetFloatArray("t.arr_f64"), ElementsAre(0.25f, -1.0f));
  EXPECT_EQ(t.FindTensor("k6")->dtype, DType::kQ6_K);
  EXPECT_THAT(t.FindTensor("f")->dims, ElementsAre(3, 2, 1));

  absl::StatusOr<std::unique_ptr<GgufFile>> meta = GgufFile::Open(dir + "metadata_only.gguf");
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_TRUE((*meta)->tensors().empty());

  absl::StatusOr<std::unique_ptr<GgufFile>> a64 = GgufFile::Open(dir + "aligned_64.gguf");
  ASSERT_TRUE(a64.ok()) << a64.status();
  EXPECT_EQ((*a64)->alignment(), 64u);
  EXPECT_EQ((*a64)->FindTensor("c")->offset, 128u);  // 12 -> 64, 30 -> 128
}

TEST(GgufRealModelTest, DefaultModelFacts) {
  const char* dir = std::getenv("CHAI_SOURCE_DIR");
  const std::string path = absl::StrCat(dir != nullptr ? dir : CHAI_SOURCE_DIR,
                                        "/models/SmolLM2-135M-Instruct.Q4_1.gguf");
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    GTEST_SKIP() << "default model not present at " << path
                 << " (git-ignored; fetch it to run this test)";
  }
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& m = **f;
  EXPECT_EQ(m.version(), 3u);
  EXPECT_EQ(m.tensors().size(), 272u);
  EXPECT_EQ(*m.GetString("general.architecture"), "llama");
  EXPECT_EQ(*m.GetInt("llama.block_count"), 30);
  EXPECT_EQ(*m.GetInt("llama.embedding_length"), 576);
  EXPECT_GT(*m.GetFloat("llama.rope.freq_base"), 0.0);
  EXPECT_TRUE(m.GetBool("tokenizer.ggml.add_bos_token").ok());
  const GgufTensorInfo* emb = m.FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->dtype, DType::kQ8_0);
  EXPECT_THAT(emb->dims, ElementsAre(576, 49152));
  EXPECT_EQ(emb->n_bytes, 576u / 32 * 34 * 49152);
  absl::StatusOr<std::vector<absl::string_view>> tokens = m.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  EXPECT_EQ(tokens->size(), 49152u);
  EXPECT_EQ(m.GetIntArray("tokenizer.ggml.token_type")->size(), 49152u);
  for (const GgufTensorInfo& t : m.tensors()) {
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % m.alignment(), 0u) << t.name;
  }
}

}  // namespace
}  // namespace chai::engine
