//! `RPMTAG_FILECAPS` text (`cap_net_raw=ep`, as `%caps()` and `setcap` spell it) turned
//! into the `security.capability` xattr that `setcap` would write: the lock keeps file
//! capabilities as that xattr's bytes, whatever the backend.

/// The capabilities by number, as libcap names them (`CAP_CHECKPOINT_RESTORE` is 40).
const NAMES: [&str; 41] = [
    "cap_chown",
    "cap_dac_override",
    "cap_dac_read_search",
    "cap_fowner",
    "cap_fsetid",
    "cap_kill",
    "cap_setgid",
    "cap_setuid",
    "cap_setpcap",
    "cap_linux_immutable",
    "cap_net_bind_service",
    "cap_net_broadcast",
    "cap_net_admin",
    "cap_net_raw",
    "cap_ipc_lock",
    "cap_ipc_owner",
    "cap_sys_module",
    "cap_sys_rawio",
    "cap_sys_chroot",
    "cap_sys_ptrace",
    "cap_sys_pacct",
    "cap_sys_admin",
    "cap_sys_boot",
    "cap_sys_nice",
    "cap_sys_resource",
    "cap_sys_time",
    "cap_sys_tty_config",
    "cap_mknod",
    "cap_lease",
    "cap_audit_write",
    "cap_audit_control",
    "cap_setfcap",
    "cap_mac_override",
    "cap_mac_admin",
    "cap_syslog",
    "cap_wake_alarm",
    "cap_block_suspend",
    "cap_audit_read",
    "cap_perfmon",
    "cap_bpf",
    "cap_checkpoint_restore",
];

/// `VFS_CAP_REVISION_2`: 64-bit sets, no namespace root id (what `setcap` writes).
const REVISION_2: u32 = 0x0200_0000;

/// `VFS_CAP_FLAGS_EFFECTIVE`: the permitted set is raised to effective on exec.
const EFFECTIVE: u32 = 0x1;

/// The `security.capability` bytes for capability text `text`, lower-case hex; `None`
/// for no capabilities (the empty text rpm stores for files without `%caps`, or `=`).
/// Refused, with why: an unknown capability or flag, a clause without `=`, `+` or `-`,
/// and an effective set that is neither empty nor all of permitted and inheritable
/// (the file xattr has one effective bit, so libcap refuses it too).
pub fn xattr_hex(text: &str) -> Result<Option<String>, String> {
    // Bit sets: permitted, inheritable, effective.
    let (mut p, mut i, mut e) = (0u64, 0u64, 0u64);
    for clause in text.split_whitespace() {
        let Some(at) = clause.find(['=', '+', '-']) else {
            return Err(format!(
                "capability clause `{clause}` has no `=`, `+` or `-`"
            ));
        };
        let (names, actions) = clause.split_at(at);
        let mut set = 0u64;
        if names.is_empty() || names.eq_ignore_ascii_case("all") {
            set = (1 << NAMES.len()) - 1;
        } else {
            for name in names.split(',') {
                let Some(bit) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(name)) else {
                    return Err(format!("unknown capability `{name}`"));
                };
                set |= 1 << bit;
            }
        }
        let mut op = ' ';
        for c in actions.chars() {
            match c {
                '=' => {
                    (p, i, e) = (p & !set, i & !set, e & !set);
                    op = c;
                }
                '+' | '-' => op = c,
                'p' | 'i' | 'e' => {
                    let flags = match c {
                        'p' => &mut p,
                        'i' => &mut i,
                        _ => &mut e,
                    };
                    if op == '-' {
                        *flags &= !set;
                    } else {
                        *flags |= set;
                    }
                }
                other => return Err(format!("unknown capability flag `{other}` in `{clause}`")),
            }
        }
    }
    if p == 0 && i == 0 && e == 0 {
        return Ok(None);
    }
    let magic = match e {
        0 => REVISION_2,
        e if e == p | i => REVISION_2 | EFFECTIVE,
        _ => {
            return Err(format!(
                "capabilities `{text}` make some but not all of the file's capabilities \
                 effective, which a file cannot carry"
            ));
        }
    };
    let mut bytes = magic.to_le_bytes().to_vec();
    for word in 0..2 {
        let half = |set: u64| ((set >> (32 * word)) as u32).to_le_bytes();
        bytes.extend(half(p));
        bytes.extend(half(i));
    }
    Ok(Some(hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_become_what_setcap_writes() {
        // `setcap cap_net_raw=ep ping; getfattr -n security.capability -e hex ping`.
        let ping = "0100000200200000000000000000000000000000";
        assert_eq!(xattr_hex("cap_net_raw=ep").unwrap().as_deref(), Some(ping));
        assert_eq!(xattr_hex("CAP_NET_RAW+pe").unwrap().as_deref(), Some(ping));
        assert_eq!(
            xattr_hex("cap_net_bind_service,cap_net_raw+ep")
                .unwrap()
                .as_deref(),
            Some("0100000200240000000000000000000000000000")
        );
        // No effective bit: revision 2 alone.
        assert_eq!(
            xattr_hex("cap_net_raw=p").unwrap().as_deref(),
            Some("0000000200200000000000000000000000000000")
        );
        // Every capability (41 bits: 32 in the first word, 9 in the second).
        assert_eq!(
            xattr_hex("=eip").unwrap().as_deref(),
            Some("01000002ffffffffffffffffff010000ff010000")
        );
        assert_eq!(
            xattr_hex("all=ep cap_sys_admin-ep").unwrap().as_deref(),
            Some("01000002ffffdfff00000000ff01000000000000")
        );
        assert_eq!(xattr_hex("").unwrap(), None);
        assert_eq!(xattr_hex("=").unwrap(), None);
    }

    #[test]
    fn what_setcap_refuses_is_refused() {
        for (text, why) in [
            ("cap_frobnicate=ep", "unknown capability `cap_frobnicate`"),
            ("cap_net_raw", "has no `=`"),
            ("cap_net_raw=epx", "unknown capability flag `x`"),
            ("cap_net_raw=p cap_chown=ep", "some but not all"),
        ] {
            let err = xattr_hex(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
        }
    }
}
