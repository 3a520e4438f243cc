{
  "targets": [
    {
      "target_name": "lb4",
      "sources": [
        "native/core/backend_table.cc",
        "native/core/counters.cc",
        "native/core/engine.cc",
        "native/core/epoll_loop.cc",
        "native/core/flow_table.cc",
        "native/core/listener_socket.cc",
        "native/core/pipe_pool.cc",
        "native/core/socket_address.cc",
        "native/core/tcp_flow.cc",
        "native/core/worker.cc",
        "native/binding/addon.cc",
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
