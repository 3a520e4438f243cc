{
  "targets": [
    {
      "target_name": "lb4",
      "sources": [
        "native/core/balance/backend_table.cc",
        "native/core/balance/least_conn.cc",
        "native/core/balance/maglev.cc",
        "native/core/balance/maglev_picker.cc",
        "native/core/balance/picker.cc",
        "native/core/balance/round_robin.cc",
        "native/core/counters.cc",
        "native/core/engine.cc",
        "native/core/io/epoll_loop.cc",
        "native/core/io/socket_address.cc",
        "native/core/proxy_protocol/header_parser.cc",
        "native/core/proxy_protocol/header_reader.cc",
        "native/core/proxy_protocol/header_writer.cc",
        "native/core/policy/network_set.cc",
        "native/core/policy/source_tracker.cc",
        "native/core/sni/client_hello.cc",
        "native/core/sni/hello_reader.cc",
        "native/core/sni/sni_routes.cc",
        "native/core/tcp/flow_table.cc",
        "native/core/tcp/listener_socket.cc",
        "native/core/tcp/pipe_pool.cc",
        "native/core/tcp/splice_pump.cc",
        "native/core/tcp/tcp_proxy.cc",
        "native/core/udp/session_replication.cc",
        "native/core/udp/session_table.cc",
        "native/core/udp/udp_proxy.cc",
        "native/core/worker.cc",
        "native/binding/addon.cc",
        "native/binding/engine_replication.cc",
        "native/binding/engine_wrap.cc",
        "native/binding/options.cc",
        "native/core/vip/address_netlink.cc",
        "native/core/vip/announce.cc",
        "native/core/vip/vip_address.cc",
        "native/binding/vip_wrap.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/core"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden", "-O2"],
      "cflags_cc!": ["-fno-rtti"],
      "ldflags": ["-pthread"]
    }
  ]
}
