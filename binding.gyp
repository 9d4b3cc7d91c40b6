{
  "targets": [
    {
      "target_name": "stockade",
      "sources": [
        "native/addon.cc", "native/spawn.cc", "native/child.cc", "native/userns.cc",
        "native/mounts.cc", "native/net.cc", "native/caps.cc", "native/seccomp.cc",
        "native/fds.cc", "native/udp.cc", "native/relay.cc", "native/spawner.cc", "native/compat.cc",
        "native/landlock.cc", "native/loop_handles.cc", "native/audit.cc",
        "native/cgroup.cc", "native/limits.cc", "native/oomwatch.cc", "native/hostscan.cc", "native/scanwitness.cc",
        "native/mcpcheck.cc", "native/toolrelay.cc", "native/planwire.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS: a libuv callback that reaches JavaScript while a
      # Worker's environment is being torn down (Environment::CleanupHandles runs the loop once
      # more, before the cleanup hooks) gets napi_pending_exception with nothing pending; without
      # the macro node-addon-api turns that into a fatal error that aborts the whole process.
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS",
                  "_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=gnu++17", "-fno-exceptions", "-Wall", "-Wextra", "-Werror",
                    "-fvisibility=hidden", "-fstack-protector-strong", "-Wno-missing-field-initializers"],
      "dependencies": ["stockade-init", "stockade-launch"]
    },
    {
      # The front of `stockade run` that is not a Node process (native/launch.cc): the addon's own
      # spawn, linked statically (like stockade-init, it runs on any Linux the prebuild is for).
      "target_name": "stockade-launch",
      "type": "executable",
      "sources": [
        "native/launch.cc", "native/launchrecord.cc", "native/planwire.cc", "native/spawn.cc",
        "native/child.cc", "native/userns.cc", "native/mounts.cc", "native/net.cc", "native/caps.cc",
        "native/seccomp.cc", "native/fds.cc", "native/landlock.cc", "native/audit.cc",
        "native/cgroup.cc", "native/limits.cc", "native/scanwitness.cc"
      ],
      "defines": ["_GNU_SOURCE"],
      "cflags!": ["-fno-exceptions", "-fPIC"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=gnu++17", "-fno-exceptions", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-fstack-protector-strong", "-Wno-missing-field-initializers"],
      "ldflags!": ["-rdynamic"],
      "ldflags": ["-static", "-Wl,--build-id=none"]
    },
    {
      "target_name": "stockade-init",
      "type": "executable",
      "sources": ["native/init.c"],
      "cflags!": ["-fPIC", "-pthread"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror", "-fstack-protector-strong", "-ffreestanding",
                 "-fno-pie", "-fno-asynchronous-unwind-tables", "-fno-unwind-tables"],
      "ldflags!": ["-rdynamic", "-pthread"],
      "ldflags": ["-static", "-nostdlib", "-no-pie", "-Wl,--build-id=none"],
      "conditions": [
        ["target_arch=='x64'", {"cflags": ["-mstack-protector-guard=global"]}]
      ]
    }
  ]
}
