#include "server/grpc/api_key.h"

#include <fstream>

#include "gtest/gtest.h"

namespace chai::server {
namespace {

TEST(ConstantTimeEqualsTest, ComparesContentAndLength) {
  EXPECT_TRUE(ConstantTimeEquals("secret-key-1", "secret-key-1"));
  EXPECT_FALSE(ConstantTimeEquals("secret-key-1", "secret-key-2"));
  EXPECT_FALSE(ConstantTimeEquals("secret-key-1", "secret-key-10"));
  EXPECT_FALSE(ConstantTimeEquals("secret-key-1", "secret-key-"));
  EXPECT_FALSE(ConstantTimeEquals("", "x"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  // A prefix padded with NULs must not match (the loop pads the short side
  // with zero bytes).
  EXPECT_FALSE(ConstantTimeEquals(absl::string_view("abc\0", 4), "abc"));
}

TEST(ApiKeysTest, AcceptsBearerAndXApiKey) {
  absl::StatusOr<ApiKeys> keys =
      ApiKeys::FromText("# rotation\nfirst-key-123\n\n  second-key-456  \n");
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_EQ(keys->size(), 2u);
  EXPECT_TRUE(keys->Check("Bearer first-key-123", std::nullopt).ok());
  EXPECT_TRUE(keys->Check("bearer second-key-456", std::nullopt).ok());
  EXPECT_TRUE(keys->Check(std::nullopt, "second-key-456").ok());
  EXPECT_TRUE(keys->Check(std::nullopt, " first-key-123 ").ok());
}

TEST(ApiKeysTest, RejectsMissingWrongAndMalformed) {
  absl::StatusOr<ApiKeys> keys = ApiKeys::FromText("first-key-123\n");
  ASSERT_TRUE(keys.ok());
  for (const auto& [auth, x] :
       std::vector<std::pair<std::optional<absl::string_view>, std::optional<absl::string_view>>>{
           {std::nullopt, std::nullopt},
           {"Bearer first-key-12", std::nullopt},
           {"Bearer first-key-1234", std::nullopt},
           {"first-key-123", std::nullopt},  // no scheme
           {"Basic first-key-123", std::nullopt},
           {std::nullopt, "wrong-key-123"},
           {"Bearer ", std::nullopt}}) {
    absl::Status s = keys->Check(auth, x);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated)
        << (auth ? std::string(*auth) : "-") << " / " << (x ? std::string(*x) : "-");
    EXPECT_EQ(s.message().find("first-key-123"), absl::string_view::npos);
  }
}

TEST(ApiKeysTest, RejectsBadKeyFiles) {
  EXPECT_EQ(ApiKeys::FromText("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApiKeys::FromText("# only a comment\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApiKeys::FromText("short\n").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApiKeys::FromText("has a space inside\n").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ApiKeys::Load("/nonexistent/keys.txt").status().code(), absl::StatusCode::kNotFound);
}

TEST(ApiKeysTest, LoadsFromFile) {
  const std::string path = ::testing::TempDir() + "/api_keys.txt";
  std::ofstream(path) << "file-key-abcdef\n";
  absl::StatusOr<ApiKeys> keys = ApiKeys::Load(path);
  ASSERT_TRUE(keys.ok()) << keys.status();
  EXPECT_TRUE(keys->Check("Bearer file-key-abcdef", std::nullopt).ok());
  EXPECT_FALSE(keys->Check("Bearer file-key-abcdeg", std::nullopt).ok());
}

}  // namespace
}  // namespace chai::server
