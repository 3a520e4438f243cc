#pragma once
// A small test harness for the native unit tests: tests register themselves with TEST(), check
// with CHECK()/CHECK_EQ() (a failure is recorded with its file and line and the test goes on) or
// REQUIRE() (recorded, then the test returns), and main() reports in TAP:
//
//   ok 1 - suite: name
//   not ok 2 - suite: name
//     # test_x.cc:12: CHECK_EQ(a, b) failed: 3 != 4
//   # native: 1 passed, 1 failed
//
// The harness also fails a test that leaves a file descriptor open, and ends the run (exit 1)
// if one test takes longer than its time limit.

#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

namespace lb4test {

using TestFn = void (*)();

struct Registrar {
  Registrar(const char* suite, const char* name, TestFn fn);
};

// Records a failure against the running test. Thread-safe, but a failure recorded after the
// test returned is lost, so helper threads must be joined before the test returns.
void fail(const char* file, int line, const std::string& message);
// Adds an indented `#` line under the test's result (shown whether it passes or fails).
void note(const std::string& message);
bool currentTestFailed();

namespace detail {

template <typename T, typename = void>
struct Streamable : std::false_type {};
template <typename T>
struct Streamable<T, std::void_t<decltype(std::declval<std::ostream&>() << std::declval<const T&>())>>
    : std::true_type {};

template <typename T>
std::string show(const T& v) {
  std::ostringstream os;
  if constexpr (std::is_same_v<T, bool>) {
    os << (v ? "true" : "false");
  } else if constexpr (std::is_enum_v<T>) {
    os << static_cast<long long>(static_cast<std::underlying_type_t<T>>(v));
  } else if constexpr (std::is_same_v<T, char> || std::is_same_v<T, signed char> ||
                       std::is_same_v<T, unsigned char>) {
    os << static_cast<int>(v);
  } else if constexpr (std::is_same_v<T, std::nullptr_t>) {
    os << "nullptr";
  } else if constexpr (std::is_convertible_v<const T&, std::string>) {
    os << '"' << std::string(v) << '"';
  } else if constexpr (Streamable<T>::value) {
    os << v;
  } else {
    os << "(unprintable)";
  }
  return os.str();
}

// Integer comparisons that are right across signedness (std::cmp_less is C++20), so that
// CHECK_EQ(v.size(), 3) neither warns nor lies.
template <typename A, typename B>
constexpr bool bothIntegers() {
  return std::is_integral_v<A> && std::is_integral_v<B> && !std::is_same_v<A, bool> && !std::is_same_v<B, bool>;
}

template <typename A, typename B>
bool equal(const A& a, const B& b) {
  if constexpr (bothIntegers<A, B>()) {
    if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) {
      return a == b;
    } else if constexpr (std::is_signed_v<A>) {
      return a >= 0 && static_cast<std::make_unsigned_t<A>>(a) == b;
    } else {
      return b >= 0 && a == static_cast<std::make_unsigned_t<B>>(b);
    }
  } else {
    return a == b;
  }
}

template <typename A, typename B>
bool less(const A& a, const B& b) {
  if constexpr (bothIntegers<A, B>()) {
    if constexpr (std::is_signed_v<A> == std::is_signed_v<B>) {
      return a < b;
    } else if constexpr (std::is_signed_v<A>) {
      return a < 0 || static_cast<std::make_unsigned_t<A>>(a) < b;
    } else {
      return b >= 0 && a < static_cast<std::make_unsigned_t<B>>(b);
    }
  } else {
    return a < b;
  }
}

template <typename A, typename B>
bool compare(const A& a, const char* op, const B& b) {
  const std::string o(op);
  if (o == "==") return equal(a, b);
  if (o == "!=") return !equal(a, b);
  if (o == "<") return less(a, b);
  if (o == "<=") return !less(b, a);
  if (o == ">") return less(b, a);
  return !less(a, b);  // ">="
}

}  // namespace detail
}  // namespace lb4test

#define LB4_TEST_CAT2(a, b) a##b
#define LB4_TEST_CAT(a, b) LB4_TEST_CAT2(a, b)

// TEST(suite, name) { ... }: suite and name are identifiers; the pair must be unique.
#define TEST(suite, name)                                                                         \
  static void LB4_TEST_CAT(lb4_test_, LB4_TEST_CAT(suite, LB4_TEST_CAT(_, name)))();              \
  static ::lb4test::Registrar LB4_TEST_CAT(lb4_registrar_, LB4_TEST_CAT(suite, LB4_TEST_CAT(_, name)))( \
      #suite, #name, &LB4_TEST_CAT(lb4_test_, LB4_TEST_CAT(suite, LB4_TEST_CAT(_, name))));        \
  static void LB4_TEST_CAT(lb4_test_, LB4_TEST_CAT(suite, LB4_TEST_CAT(_, name)))()

#define CHECK(cond)                                                       \
  do {                                                                    \
    if (!(cond)) ::lb4test::fail(__FILE__, __LINE__, "CHECK(" #cond ") failed"); \
  } while (0)

#define LB4_CHECK_OP(name, op, a, b)                                                                 \
  do {                                                                                               \
    /* Copies, not references: (a) may be a member of a temporary that dies with this line. */   \
    const auto lb4_a_ = (a);                                                                         \
    const auto lb4_b_ = (b);                                                                         \
    if (!::lb4test::detail::compare(lb4_a_, op, lb4_b_))                                             \
      ::lb4test::fail(__FILE__, __LINE__,                                                            \
                      name "(" #a ", " #b ") failed: " + ::lb4test::detail::show(lb4_a_) + " " op " " + \
                          ::lb4test::detail::show(lb4_b_) + " is false");                            \
  } while (0)

#define CHECK_EQ(a, b) LB4_CHECK_OP("CHECK_EQ", "==", a, b)
#define CHECK_NE(a, b) LB4_CHECK_OP("CHECK_NE", "!=", a, b)
#define CHECK_LT(a, b) LB4_CHECK_OP("CHECK_LT", "<", a, b)
#define CHECK_LE(a, b) LB4_CHECK_OP("CHECK_LE", "<=", a, b)
#define CHECK_GT(a, b) LB4_CHECK_OP("CHECK_GT", ">", a, b)
#define CHECK_GE(a, b) LB4_CHECK_OP("CHECK_GE", ">=", a, b)

// Like CHECK, but ends the test (returns from the test function) when false.
#define REQUIRE(cond)                                                        \
  do {                                                                       \
    if (!(cond)) {                                                           \
      ::lb4test::fail(__FILE__, __LINE__, "REQUIRE(" #cond ") failed");      \
      return;                                                                \
    }                                                                        \
  } while (0)
