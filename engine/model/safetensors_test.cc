// Tests for the safetensors reader and the sharded-index logic: one test per
// malformed class of DESIGN.md section 7 that concerns the container, each
// building its bad bytes here, plus the well-formed cases.
#include "engine/model/safetensors.h"

#include <sys/stat.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/model/safetensors_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace chai::engine {
namespace {

using ::chai::engine::testing::BuildSafetensors;
using ::chai::engine::testing::F32Bytes;
using ::chai::engine::testing::RawSafetensors;
using ::chai::engine::testing::StTensor;
using ::chai::engine::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Parses `bytes` and returns the status (the bytes outlive the call).
absl::Status ParseStatus(const std::string& bytes, const SafetensorsLimits& limits = {}) {
  return SafetensorsFile::FromBuffer(bytes, limits).status();
}

// A header with one tensor entry `entry` (the JSON object text) and `data`.
std::string OneEntry(absl::string_view entry, absl::string_view data) {
  return RawSafetensors(absl::StrCat("{\"t\":", entry, "}"), data);
}

#define EXPECT_INVALID(status, substr)                               \
  do {                                                               \
    absl::Status _s = (status);                                      \
    EXPECT_EQ(_s.code(), absl::StatusCode::kInvalidArgument) << _s;  \
    EXPECT_THAT(std::string(_s.message()), HasSubstr(substr)) << _s; \
  } while (0)

TEST(SafetensorsTest, ParsesWellFormedFile) {
  const std::string bytes =
      BuildSafetensors({{"a", "F32", {2, 3}, F32Bytes({1, 2, 3, 4, 5, 6})},
                        {"b", "BF16", {2}, std::string("\x80\x3f\x00\x40", 4)},
                        {"ids", "I64", {1}, std::string(8, '\x07')},
                        {"empty", "F16", {0, 4}, ""}},
                       R"({"format":"pt"})");
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::FromBuffer(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 4u);
  const SafetensorsTensor* a = (*f)->Find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, "F32");
  EXPECT_EQ(a->kernel_dtype, kernels::DType::kF32);
  EXPECT_THAT(a->shape, ElementsAre(2, 3));
  EXPECT_EQ(a->n_elements, 6);
  float v[6];
  std::memcpy(v, a->data, sizeof(v));
  EXPECT_EQ(v[5], 6.0f);
  EXPECT_EQ((*f)->Find("b")->kernel_dtype, kernels::DType::kBF16);
  EXPECT_FALSE((*f)->Find("ids")->kernel_dtype.has_value());
  EXPECT_EQ((*f)->Find("ids")->dtype_bytes, 8);
  EXPECT_EQ((*f)->Find("empty")->n_elements, 0);
  EXPECT_EQ((*f)->Find("nope"), nullptr);
  EXPECT_EQ((*f)->metadata().at("format"), "pt");
}

TEST(SafetensorsTest, RejectsFileShorterThanLengthField) {
  EXPECT_EQ(ParseStatus("abc").code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ParseStatus("").code(), absl::StatusCode::kDataLoss);
}

TEST(SafetensorsTest, RejectsHeaderLengthOverCap) {
  std::string bytes = RawSafetensors("{}");
  const uint64_t huge = uint64_t{1} << 62;
  std::memcpy(bytes.data(), &huge, 8);
  EXPECT_INVALID(ParseStatus(bytes), "over the cap");
  SafetensorsLimits small;
  small.max_header_bytes = 1;
  EXPECT_INVALID(ParseStatus(RawSafetensors("{}"), small), "over the cap");
}

TEST(SafetensorsTest, RejectsHeaderLengthBeyondFile) {
  std::string bytes = RawSafetensors("{}");
  const uint64_t n = 3;  // one byte more than the file holds
  std::memcpy(bytes.data(), &n, 8);
  const absl::Status s = ParseStatus(bytes);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("past the end"));
}

TEST(SafetensorsTest, RejectsNonJsonAndNonObjectHeaders) {
  EXPECT_INVALID(ParseStatus(RawSafetensors("{\"t\": ")), "not valid JSON");
  EXPECT_INVALID(ParseStatus(RawSafetensors("{} trailing")), "not valid JSON");
  EXPECT_INVALID(ParseStatus(RawSafetensors("[1, 2]")), "start with '{'");
  EXPECT_INVALID(ParseStatus(RawSafetensors("")), "start with '{'");
  EXPECT_INVALID(ParseStatus(RawSafetensors("{\"\xff\":1}")), "not valid JSON");
}

TEST(SafetensorsTest, RejectsValuesOutOfPlace) {
  const std::string deep = std::string(40, '[') + std::string(40, ']');
  EXPECT_INVALID(ParseStatus(RawSafetensors(absl::StrCat("{\"t\":", deep, "}"))),
                 "tensor 't' is not an object");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4],)"
                                      R"("extra":{"a":[1,2]}})",
                                      "abcd")),
                 "unknown field 'extra'");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":{},"shape":[1],"data_offsets":[0,4]})", "abcd")),
                 "dtype is not a string");
  EXPECT_INVALID(
      ParseStatus(OneEntry(R"({"dtype":"F32","shape":[[1]],"data_offsets":[0,4]})", "abcd")),
      "non-negative integer");
  EXPECT_INVALID(ParseStatus(RawSafetensors(R"({"__metadata__":{"a":{"b":"c"}}})")),
                 "is not a string");
}

TEST(SafetensorsTest, RejectsMoreTensorsThanTheLimit) {
  SafetensorsLimits limits;
  limits.max_tensors = 1;
  const std::string bytes =
      BuildSafetensors({{"a", "F32", {1}, F32Bytes({1})}, {"b", "F32", {1}, F32Bytes({2})}});
  EXPECT_INVALID(ParseStatus(bytes, limits), "more than 1 tensors");
  EXPECT_TRUE(ParseStatus(bytes).ok());
}

TEST(SafetensorsTest, RejectsEntriesMissingFields) {
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"shape":[1],"data_offsets":[0,4]})", "abcd")),
                 "needs dtype, shape and data_offsets");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","data_offsets":[0,4]})", "abcd")),
                 "needs dtype");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1]})", "abcd")), "needs dtype");
  EXPECT_INVALID(ParseStatus(OneEntry("17", "")), "is not an object");
}

TEST(SafetensorsTest, RejectsUnknownOrMistypedDtype) {
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F128","shape":[1],"data_offsets":[0,16]})",
                                      std::string(16, 'x'))),
                 "unknown dtype 'F128'");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":4,"shape":[1],"data_offsets":[0,4]})", "abcd")),
                 "dtype is not a string");
}

TEST(SafetensorsTest, RejectsBadShapes) {
  EXPECT_INVALID(
      ParseStatus(OneEntry(R"({"dtype":"F32","shape":[-1],"data_offsets":[0,4]})", "abcd")),
      "non-negative integer");
  EXPECT_INVALID(
      ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1.5],"data_offsets":[0,4]})", "abcd")),
      "non-negative integer");
  EXPECT_INVALID(
      ParseStatus(OneEntry(R"({"dtype":"F32","shape":["1"],"data_offsets":[0,4]})", "abcd")),
      "non-negative integer");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":4,"data_offsets":[0,4]})", "abcd")),
                 "shape is not an array");
  EXPECT_INVALID(
      ParseStatus(
          OneEntry(R"({"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]})", "abcd")),
      "more than 8 dims");
  // 2^32 * 2^32 elements overflows u64; 2^24 * 2^25 exceeds the element cap.
  EXPECT_INVALID(
      ParseStatus(OneEntry(
          R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]})", "abcd")),
      "overflows");
  EXPECT_INVALID(
      ParseStatus(
          OneEntry(R"({"dtype":"F32","shape":[16777216,33554432],"data_offsets":[0,4]})", "abcd")),
      "overflows");
  EXPECT_INVALID(
      ParseStatus(OneEntry(R"({"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,4]})",
                           "abcd")),
      "overflows");
}

TEST(SafetensorsTest, RejectsBadDataOffsets) {
  const std::string d8(8, 'x');
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[4,0]})", d8)),
                 "begin > end");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[0]})", d8)),
                 "[begin, end]");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", d8)),
                 "[begin, end]");
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4.0]})", d8)),
                 "[begin, end]");
  const absl::Status outside =
      ParseStatus(OneEntry(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})", d8));
  EXPECT_EQ(outside.code(), absl::StatusCode::kDataLoss) << outside;
  EXPECT_THAT(std::string(outside.message()), HasSubstr("outside the data section"));
  const absl::Status huge = ParseStatus(OneEntry(
      R"({"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551615]})",
      d8));
  EXPECT_EQ(huge.code(), absl::StatusCode::kDataLoss) << huge;
  EXPECT_INVALID(ParseStatus(OneEntry(R"({"dtype":"F32","shape":[1],"data_offsets":[0,8]})", d8)),
                 "spans 8 bytes, but 1 x F32 takes 4");
}

TEST(SafetensorsTest, RejectsOverlapGapsAndUncoveredBytes) {
  const std::string d8(8, 'x');
  EXPECT_INVALID(
      ParseStatus(RawSafetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                                 d8)),
      "overlaps");
  EXPECT_INVALID(
      ParseStatus(RawSafetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 d8)),
      "overlaps");
  EXPECT_INVALID(
      ParseStatus(RawSafetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8)),
      "gap of 4 bytes");
  EXPECT_INVALID(
      ParseStatus(RawSafetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", d8)),
      "4 bytes not covered");
}

TEST(SafetensorsTest, RejectsDuplicateTensorNames) {
  // nlohmann alone would keep the second entry silently.
  EXPECT_INVALID(
      ParseStatus(RawSafetensors(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                                 R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                                 std::string(8, 'x'))),
      "duplicate key 'a'");
  EXPECT_INVALID(
      ParseStatus(RawSafetensors(
          R"({"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}})", "abcd")),
      "duplicate key 'dtype'");
}

TEST(SafetensorsTest, RejectsEmptyAndOverlongNames) {
  EXPECT_INVALID(ParseStatus(RawSafetensors(
                     R"({"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd")),
                 "empty tensor name");
  SafetensorsLimits limits;
  limits.max_name_bytes = 4;
  EXPECT_INVALID(
      ParseStatus(
          RawSafetensors(R"({"abcdef":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", "abcd"),
          limits),
      "longer than 4");
}

TEST(SafetensorsTest, HandlesMetadata) {
  EXPECT_TRUE(ParseStatus(RawSafetensors(R"({"__metadata__":{}})")).ok());
  EXPECT_INVALID(ParseStatus(RawSafetensors(R"({"__metadata__":[]})")), "not an object");
  EXPECT_INVALID(ParseStatus(RawSafetensors(R"({"__metadata__":{"format":1}})")), "not a string");
}

TEST(SafetensorsTest, OpenReportsMissingFileAndDirectory) {
  EXPECT_EQ(SafetensorsFile::Open("/nonexistent/model.safetensors").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(SafetensorsFile::Open(::testing::TempDir()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------- index

TEST(SafetensorsIndexTest, ParsesWeightMap) {
  // Other top-level values (metadata, of any shape) are skipped.
  absl::StatusOr<absl::flat_hash_map<std::string, std::string>> m =
      ParseSafetensorsIndex(R"({"metadata":{"total_size":8,"x":[[{"y":null}],true]},"other":1,)"
                            R"("weight_map":{"a":"s1.safetensors","b":"s2.safetensors"}})");
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->at("b"), "s2.safetensors");
}

TEST(SafetensorsIndexTest, RejectsMalformedIndexes) {
  EXPECT_INVALID(ParseSafetensorsIndex("not json").status(), "not valid JSON");
  EXPECT_INVALID(ParseSafetensorsIndex("[]").status(), "not a JSON object");
  EXPECT_INVALID(ParseSafetensorsIndex(R"({"weight_map":{"a":"x"}} extra)").status(),
                 "not valid JSON");
  EXPECT_INVALID(ParseSafetensorsIndex("{}").status(), "no weight_map");
  EXPECT_INVALID(ParseSafetensorsIndex(R"({"weight_map":[]})").status(), "no weight_map");
  EXPECT_INVALID(ParseSafetensorsIndex(R"({"weight_map":{}})").status(), "empty");
  EXPECT_INVALID(ParseSafetensorsIndex(R"({"weight_map":{"a":1}})").status(), "not a string");
  EXPECT_INVALID(ParseSafetensorsIndex(R"({"weight_map":{"":"x"}})").status(), "empty tensor");
  EXPECT_INVALID(ParseSafetensorsIndex(R"({"weight_map":{"a":"x","a":"y"}})").status(),
                 "duplicate key");
  for (const char* bad :
       {"../x.safetensors", "sub/x.safetensors", "/etc/passwd", "..", "", "a\\\\b.safetensors"}) {
    SCOPED_TRACE(bad);
    EXPECT_INVALID(
        ParseSafetensorsIndex(absl::StrCat(R"({"weight_map":{"a":")", bad, "\"}}")).status(),
        "not a plain file name");
  }
}

class ShardedCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/st_shards_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    WriteFile(dir_ + "/s1.safetensors", BuildSafetensors({{"a", "F32", {1}, F32Bytes({1})}}));
    WriteFile(dir_ + "/s2.safetensors", BuildSafetensors({{"b", "F32", {2}, F32Bytes({2, 3})}}));
  }
  void WriteIndex(absl::string_view weight_map) {
    WriteFile(dir_ + "/model.safetensors.index.json",
              absl::StrCat(R"({"metadata":{},"weight_map":)", weight_map, "}"));
  }
  std::string dir_;
};

TEST_F(ShardedCheckpointTest, OpensEveryShard) {
  WriteIndex(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  for (const std::string& path : {dir_, dir_ + "/model.safetensors.index.json"}) {
    absl::StatusOr<std::unique_ptr<SafetensorsCheckpoint>> c = SafetensorsCheckpoint::Open(path);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ((*c)->shards().size(), 2u);
    ASSERT_NE((*c)->Find("b"), nullptr);
    EXPECT_THAT((*c)->Find("b")->shape, ElementsAre(2));
    EXPECT_EQ((*c)->Names().size(), 2u);
  }
}

TEST_F(ShardedCheckpointTest, RejectsMissingShard) {
  WriteIndex(R"({"a":"s1.safetensors","b":"s3.safetensors"})");
  EXPECT_EQ(SafetensorsCheckpoint::Open(dir_).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ShardedCheckpointTest, RejectsTensorInWrongShard) {
  WriteIndex(R"({"a":"s2.safetensors","b":"s2.safetensors"})");
  EXPECT_INVALID(SafetensorsCheckpoint::Open(dir_).status(), "'a' is not in shard s2");
}

TEST_F(ShardedCheckpointTest, RejectsShardTensorMissingFromIndex) {
  WriteIndex(R"({"a":"s1.safetensors"})");
  WriteFile(dir_ + "/s1.safetensors",
            BuildSafetensors({{"a", "F32", {1}, F32Bytes({1})}, {"c", "F32", {1}, F32Bytes({1})}}));
  EXPECT_INVALID(SafetensorsCheckpoint::Open(dir_).status(), "'c' is not listed");
}

TEST_F(ShardedCheckpointTest, RejectsTensorInTwoShards) {
  WriteIndex(R"({"a":"s1.safetensors","b":"s2.safetensors"})");
  WriteFile(dir_ + "/s2.safetensors", BuildSafetensors({{"a", "F32", {1}, F32Bytes({1})},
                                                        {"b", "F32", {2}, F32Bytes({2, 3})}}));
  EXPECT_INVALID(SafetensorsCheckpoint::Open(dir_).status(), "more than one shard");
}

TEST_F(ShardedCheckpointTest, RejectsEscapingShardPath) {
  WriteIndex(R"({"a":"../s1.safetensors"})");
  EXPECT_INVALID(SafetensorsCheckpoint::Open(dir_).status(), "not a plain file name");
}

TEST_F(ShardedCheckpointTest, ReportsDirectoryWithoutCheckpoint) {
  std::filesystem::remove(dir_ + "/model.safetensors.index.json");
  EXPECT_EQ(SafetensorsCheckpoint::Open(dir_).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace chai::engine
