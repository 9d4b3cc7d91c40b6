// audit.h — the kernel audit subsystem as Landlock's denials would need it (audit.cc).
#pragma once

namespace stockade {

struct AuditProbe {
  // 1: audit enabled on the host, 0: disabled (Landlock logs nothing), or -errno of AUDIT_GET
  // (EPERM without CAP_AUDIT_CONTROL, ECONNREFUSED outside the initial user namespace).
  int enabled = 0;
  // 0: the read-only multicast group AUDIT_NLGRP_READLOG can be joined (CAP_AUDIT_READ), or
  // -errno (EPERM).
  int readLog = 0;
};

AuditProbe probeAudit();

}  // namespace stockade
