// market_spread: two sources (orders and market quotes, "NBBO") merged into one state per symbol;
// orders on symbols whose spread is too wide are reported (WIRE.md §6).
//
// NBBO payload (42 bytes):  [u8 2][4s symbol][21s time][f64 bid][f64 offer]
// Order payload (53 bytes): [u8 1][u8 side][u32 account][6s order_id][4s symbol][f64 qty]
//                           [f64 price][21s time]
// Output (55-byte payload): [u8 side][u32 account][6s order_id][4s symbol][f64 qty][f64 price]
//                           [f64 bid][f64 offer][u64 ts_ns]
// A symbol rejects orders while offer - bid >= 0.05 or (offer - bid) / mid >= 0.05, and before
// its first quote (as Wallaroo's market spread did).
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "cli/run_worker.h"
#include "engine/big_endian.h"

namespace {

namespace be = ringtail::be;

// Orders and quotes share one type so the two pipelines can merge before key_by.
struct market_msg {
    bool is_order = false;
    std::uint8_t side = 0;
    std::uint32_t account = 0;
    char order_id[6] = {};
    char symbol[4] = {};
    double a = 0; // order: quantity; quote: bid
    double b = 0; // order: price; quote: offer
    std::string_view key() const { return { symbol, sizeof symbol }; }
};

struct symbol_data {
    double bid = 0;
    double offer = 0;
    bool reject = true;
};

struct rejected_order {
    market_msg order;
    double bid;
    double offer;
};

std::optional<market_msg> decode_order(std::span<const std::byte> p) {
    if (p.size() != 53 || p[0] != std::byte{ 1 }) {
        return std::nullopt;
    }
    market_msg m;
    m.is_order = true;
    m.side = static_cast<std::uint8_t>(p[1]);
    m.account = be::read<std::uint32_t>(&p[2]);
    std::memcpy(m.order_id, &p[6], 6);
    std::memcpy(m.symbol, &p[12], 4);
    m.a = be::read<double>(&p[16]);
    m.b = be::read<double>(&p[24]);
    return m;
}

std::optional<market_msg> decode_nbbo(std::span<const std::byte> p) {
    if (p.size() != 42 || p[0] != std::byte{ 2 }) {
        return std::nullopt;
    }
    market_msg m;
    std::memcpy(m.symbol, &p[1], 4);
    m.a = be::read<double>(&p[26]);
    m.b = be::read<double>(&p[34]);
    return m;
}

std::optional<rejected_order> check(const market_msg& m, symbol_data& s) {
    if (!m.is_order) {
        s.bid = m.a;
        s.offer = m.b;
        const double spread = s.offer - s.bid;
        const double mid = (s.bid + s.offer) / 2;
        s.reject = spread >= 0.05 || (mid > 0 && spread / mid >= 0.05);
        return std::nullopt;
    }
    if (!s.reject) {
        return std::nullopt;
    }
    return rejected_order{ m, s.bid, s.offer };
}

void encode(const rejected_order& r, std::string& out) {
    ringtail::append_frame(out, [&](std::string& payload) {
        be::append<std::uint8_t>(payload, r.order.side);
        be::append<std::uint32_t>(payload, r.order.account);
        payload.append(r.order.order_id, 6);
        payload.append(r.order.symbol, 4);
        be::append<double>(payload, r.order.a);
        be::append<double>(payload, r.order.b);
        be::append<double>(payload, r.bid);
        be::append<double>(payload, r.offer);
        auto now = std::chrono::system_clock::now().time_since_epoch();
        be::append<std::uint64_t>(
          payload, static_cast<std::uint64_t>(
                     std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()));
    });
}

} // namespace

int main(int argc, char** argv) {
    return ringtail::cli::run_worker(argc, argv, "market_spread", [](ringtail::application& app) {
        auto orders = app.source("Orders", decode_order);
        auto quotes = app.source("Market Data", decode_nbbo);
        orders.merge(quotes)
          .key_by([](const market_msg& m) { return m.key(); })
          .to_state<symbol_data>("check order", check)
          .to_sink("Rejections", encode);
    });
}
