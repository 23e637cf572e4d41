//! The files that make a tree fit the machine it runs as: a container whose kernel and
//! devices belong to the host (OpenVZ, OCI), or a virtual machine with its own kernel
//! and root disk. An installer or a first boot would write them; a lock is a template
//! for many machines, so it carries the generic versions: an empty machine-id (systemd
//! makes one on first boot and, finding none, applies the unit presets), the loopback
//! hosts file, an fstab that fits, and none of the secrets packages' scripts make for
//! their machine (SSH host keys, TLS and control keys, shared secrets: [`SECRETS`]),
//! with a unit that makes each on first boot. A virtual machine's first NIC comes up
//! by DHCP ([`Network`]), and no first-boot wizard waits on its console. A file the
//! packages already ship is left alone, and a group's own `file`, `hostfile` or
//! `overlay` wins over anything made here.

use super::Generated;

/// The label of an image's root filesystem, which a virtual machine's fstab mounts.
pub const ROOT_LABEL: &str = "appliance-root";

/// What the tree will run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// A container: the host's kernel, no block devices of its own.
    Container,
    /// A virtual machine booting its own kernel from an image's root disk.
    Virtual,
}

/// A secret a package's script makes for the machine it is installed on. A template
/// carries none: every machine made from it would share it, and each configure makes
/// another, so no two compiles would lock the same tree. Capture drops it, and a tree
/// with systemd and what the secret needs gets a unit that makes it on first boot,
/// once, before what reads it.
pub struct Secret {
    /// Where it lies (globs).
    pub paths: &'static [&'static str],
    /// Where its program makes links to it again (globs), named for what it makes: such
    /// a link goes with it. Other links to it stay, and resolve once it is made.
    pub remade_links: &'static [&'static str],
    /// What the tree must hold for the unit, as the (merged-/usr) tree holds it: the
    /// service that reads it and the programs that make it.
    needs: &'static [&'static str],
    /// The first-boot unit's name.
    unit: &'static str,
    /// What the unit makes, as its description names it.
    what: &'static str,
    /// What reads it, and so what the unit runs before.
    reader: Reader,
    /// The files it makes, whose absence runs the unit (any one's, when several): a
    /// machine that has them (a group's own `file`) keeps them.
    made: &'static [&'static str],
    /// `[Service]` settings the commands run with (`UMask=0077`, `User=munge`).
    settings: &'static [&'static str],
    /// The commands that make it, in order, as the package's script runs them.
    commands: &'static [&'static str],
}

/// What reads a secret, and so what its first-boot unit runs before.
#[derive(Clone, Copy)]
enum Reader {
    /// This service, which requires the unit.
    Service(&'static str),
    /// Several services, or one of the tree's own: the unit runs before any starts
    /// (before `sysinit.target`), and before these, which start that early themselves
    /// (`DefaultDependencies=no`).
    Boot(&'static [&'static str]),
}

impl Secret {
    /// The folder of `/etc/systemd/system` the unit's link goes in.
    fn linked_in(&self) -> String {
        match self.reader {
            Reader::Service(service) => format!("{service}.requires"),
            Reader::Boot(_) => "sysinit.target.wants".to_string(),
        }
    }

    /// The unit: a oneshot that runs the commands where the machine lacks what it makes,
    /// before what reads it.
    fn text(&self) -> String {
        let (order, install) = match self.reader {
            Reader::Service(service) => (
                format!("Before={service}\n"),
                format!("RequiredBy={service}\n"),
            ),
            Reader::Boot(early) => (
                format!(
                    "DefaultDependencies=no\nAfter=local-fs.target\nBefore=sysinit.target{}\n",
                    early.iter().map(|s| format!(" {s}")).collect::<String>()
                ),
                "WantedBy=sysinit.target\n".to_string(),
            ),
        };
        // One condition must hold, or any one of several (systemd's `|` prefix).
        let any = if self.made.len() > 1 { "|" } else { "" };
        let conditions: String = (self.made.iter())
            .map(|path| format!("ConditionPathExists={any}!{path}\n"))
            .collect();
        let settings: String = self.settings.iter().map(|s| format!("{s}\n")).collect();
        let commands: String = (self.commands.iter())
            .map(|c| format!("ExecStart={c}\n"))
            .collect();
        format!(
            "[Unit]\nDescription={} for this machine (the appliance ships none)\n{order}\
             {conditions}\n[Service]\nType=oneshot\n{settings}{commands}\n[Install]\n{install}",
            self.what
        )
    }
}

/// Where an empty file makes a package's script skip making a secret that capture
/// would drop anyway: openssh-server's postinst makes each host key only where its
/// file is missing, and an RSA key takes 0.1-1 s. Configure puts an empty file at
/// each (where its folder exists and nothing is there) before the scripts run, and
/// removes the ones it put once they are done; each lies within a secret's
/// [`Secret::paths`], so whatever a script does with one, it is never locked.
/// dropbear's are there for what dropbear's postinst reads: finding none of its own
/// keys, it would convert the SSH host keys, which are empty files then.
pub const PLACEHOLDERS: [&str; 6] = [
    "/etc/ssh/ssh_host_rsa_key",
    "/etc/ssh/ssh_host_ecdsa_key",
    "/etc/ssh/ssh_host_ed25519_key",
    "/etc/dropbear/dropbear_rsa_host_key",
    "/etc/dropbear/dropbear_ecdsa_host_key",
    "/etc/dropbear/dropbear_ed25519_host_key",
];

/// The secrets packages make when they are configured.
pub const SECRETS: [Secret; 19] = [
    Secret {
        paths: &["/etc/ssh/ssh_host_*"],
        remade_links: &[],
        needs: &["/usr/sbin/sshd", "/usr/bin/ssh-keygen"],
        unit: "appliance-ssh-hostkeys.service",
        what: "SSH host keys",
        reader: Reader::Service("ssh.service"),
        made: &["/etc/ssh/ssh_host_ed25519_key"],
        settings: &[],
        commands: &["/usr/bin/ssh-keygen -A"],
    },
    // ssl-cert's postinst; apache2, postfix, exim4 and postgresql read them. Made before
    // any service starts, for this machine's name.
    Secret {
        paths: &[
            "/etc/ssl/private/ssl-cert-snakeoil.key",
            "/etc/ssl/certs/ssl-cert-snakeoil.pem",
        ],
        remade_links: &["/etc/ssl/certs/*.[0-9]"],
        needs: &["/usr/sbin/make-ssl-cert"],
        unit: "appliance-ssl-snakeoil.service",
        what: "The snakeoil TLS key and certificate",
        reader: Reader::Boot(&[]),
        made: &["/etc/ssl/private/ssl-cert-snakeoil.key"],
        settings: &[],
        commands: &["/usr/sbin/make-ssl-cert generate-default-snakeoil"],
    },
    // bind9's postinst, with the owner and mode it gives.
    Secret {
        paths: &["/etc/bind/rndc.key"],
        remade_links: &[],
        needs: &["/usr/sbin/named", "/usr/sbin/rndc-confgen"],
        unit: "appliance-bind-rndc-key.service",
        what: "BIND's rndc key",
        reader: Reader::Service("named.service"),
        made: &["/etc/bind/rndc.key"],
        settings: &[],
        commands: &[
            "/usr/sbin/rndc-confgen -a",
            "/bin/chown root:bind /etc/bind/rndc.key",
            "/bin/chmod 0640 /etc/bind/rndc.key",
        ],
    },
    // dropbear's postinst, a key of each type it makes.
    Secret {
        // dropbear-initramfs's keys too, which no first boot needs: an image boots
        // appliance's own initramfs.
        paths: &[
            "/etc/dropbear/dropbear_*_host_key",
            "/etc/dropbear/initramfs/dropbear_*_host_key",
        ],
        remade_links: &[],
        needs: &["/usr/sbin/dropbear", "/usr/bin/dropbearkey"],
        unit: "appliance-dropbear-hostkeys.service",
        what: "Dropbear SSH host keys",
        reader: Reader::Service("dropbear.service"),
        made: &["/etc/dropbear/dropbear_ed25519_host_key"],
        settings: &[],
        commands: &[
            "/usr/bin/dropbearkey -t rsa -f /etc/dropbear/dropbear_rsa_host_key",
            "/usr/bin/dropbearkey -t ecdsa -f /etc/dropbear/dropbear_ecdsa_host_key",
            "/usr/bin/dropbearkey -t ed25519 -f /etc/dropbear/dropbear_ed25519_host_key",
        ],
    },
    // varnish's postinst: the management interface's shared secret.
    Secret {
        paths: &["/etc/varnish/secret"],
        remade_links: &[],
        needs: &["/usr/sbin/varnishd"],
        unit: "appliance-varnish-secret.service",
        what: "Varnish's management secret",
        reader: Reader::Service("varnish.service"),
        made: &["/etc/varnish/secret"],
        settings: &[],
        commands: &["/usr/bin/install -m 0600 /proc/sys/kernel/random/uuid /etc/varnish/secret"],
    },
    // munge's postinst. A cluster shares one key: its group gives it as a file, which
    // wins over this.
    Secret {
        paths: &["/etc/munge/munge.key"],
        remade_links: &[],
        needs: &["/usr/sbin/munged", "/usr/sbin/mungekey"],
        unit: "appliance-munge-key.service",
        what: "MUNGE's key",
        reader: Reader::Service("munge.service"),
        made: &["/etc/munge/munge.key"],
        settings: &["User=munge"],
        commands: &["/usr/sbin/mungekey -c"],
    },
    // nsd's postinst: the keys and certificates of nsd-control.
    Secret {
        paths: &["/etc/nsd/nsd_server.*", "/etc/nsd/nsd_control.*"],
        remade_links: &[],
        needs: &["/usr/sbin/nsd", "/usr/sbin/nsd-control-setup"],
        unit: "appliance-nsd-control-keys.service",
        what: "NSD's control keys",
        reader: Reader::Service("nsd.service"),
        made: &["/etc/nsd/nsd_control.key"],
        settings: &[],
        commands: &["/usr/sbin/nsd-control-setup"],
    },
    // rabbitmq-server's postinst, as it makes it. A cluster shares one cookie, as MUNGE
    // shares its key.
    Secret {
        paths: &["/var/lib/rabbitmq/.erlang.cookie"],
        remade_links: &[],
        needs: &["/usr/sbin/rabbitmq-server", "/usr/bin/openssl"],
        unit: "appliance-rabbitmq-cookie.service",
        what: "RabbitMQ's Erlang cookie",
        reader: Reader::Service("rabbitmq-server.service"),
        made: &["/var/lib/rabbitmq/.erlang.cookie"],
        settings: &["UMask=0077"],
        commands: &[
            "/usr/bin/openssl rand -base64 -out /var/lib/rabbitmq/.erlang.cookie 42",
            "/bin/chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie",
            "/bin/chmod 0400 /var/lib/rabbitmq/.erlang.cookie",
        ],
    },
    // courier-imap's postinst: the key and certificate IMAP's TLS serves, read by both
    // of its services, so made before any starts.
    Secret {
        paths: &["/etc/courier/imapd.pem"],
        remade_links: &[],
        needs: &["/usr/sbin/imapd", "/usr/sbin/mkimapdcert"],
        unit: "appliance-courier-imapd-cert.service",
        what: "Courier IMAP's TLS key and certificate",
        reader: Reader::Boot(&[]),
        made: &["/etc/courier/imapd.pem"],
        settings: &[],
        commands: &[
            "/usr/sbin/mkimapdcert",
            "/bin/chmod 0640 /etc/courier/imapd.pem",
            "/bin/chown root:courier /etc/courier/imapd.pem",
        ],
    },
    // courier-mta's postinst, as courier-imap's: ESMTP's TLS pair, read by its plain,
    // submission and TLS services alike.
    Secret {
        paths: &["/etc/courier/esmtpd.pem"],
        remade_links: &[],
        needs: &["/usr/sbin/esmtpd", "/usr/sbin/mkesmtpdcert"],
        unit: "appliance-courier-esmtpd-cert.service",
        what: "Courier ESMTP's TLS key and certificate",
        reader: Reader::Boot(&[]),
        made: &["/etc/courier/esmtpd.pem"],
        settings: &[],
        commands: &[
            "/usr/sbin/mkesmtpdcert",
            "/bin/chmod 0640 /etc/courier/esmtpd.pem",
            "/bin/chown root:courier /etc/courier/esmtpd.pem",
        ],
    },
    // courier-pop's postinst, likewise, for POP3 and POP3 over TLS.
    Secret {
        paths: &["/etc/courier/pop3d.pem"],
        remade_links: &[],
        needs: &["/usr/sbin/pop3d", "/usr/sbin/mkpop3dcert"],
        unit: "appliance-courier-pop3d-cert.service",
        what: "Courier POP3's TLS key and certificate",
        reader: Reader::Boot(&[]),
        made: &["/etc/courier/pop3d.pem"],
        settings: &[],
        commands: &[
            "/usr/sbin/mkpop3dcert",
            "/bin/chmod 0640 /etc/courier/pop3d.pem",
            "/bin/chown root:courier /etc/courier/pop3d.pem",
        ],
    },
    // xrdp's postinst: the RSA keys of RDP's own security layer.
    Secret {
        paths: &["/etc/xrdp/rsakeys.ini"],
        remade_links: &[],
        needs: &["/usr/sbin/xrdp", "/usr/bin/xrdp-keygen"],
        unit: "appliance-xrdp-rsakeys.service",
        what: "xrdp's RSA keys",
        reader: Reader::Service("xrdp.service"),
        made: &["/etc/xrdp/rsakeys.ini"],
        settings: &["UMask=0077"],
        commands: &[
            "/usr/bin/xrdp-keygen xrdp auto",
            "/bin/chown xrdp /etc/xrdp/rsakeys.ini",
        ],
    },
    // ejabberd's preinst: one file holding the key and a certificate for the machine's
    // name.
    Secret {
        paths: &["/etc/ejabberd/ejabberd.pem"],
        remade_links: &[],
        needs: &["/usr/sbin/ejabberdctl", "/usr/bin/openssl"],
        unit: "appliance-ejabberd-cert.service",
        what: "ejabberd's TLS key and certificate",
        reader: Reader::Service("ejabberd.service"),
        made: &["/etc/ejabberd/ejabberd.pem"],
        settings: &["UMask=0077"],
        commands: &[
            "/usr/bin/openssl req -new -x509 -days 365 -nodes -subj /CN=%H -out /etc/ejabberd/ejabberd.pem -keyout /etc/ejabberd/ejabberd.pem",
            "/bin/chmod 0640 /etc/ejabberd/ejabberd.pem",
            "/bin/chown root:ejabberd /etc/ejabberd/ejabberd.pem",
        ],
    },
    // quassel-core's postinst: the core's TLS pair in one file, made by its own user.
    Secret {
        paths: &["/var/lib/quassel/quasselCert.pem"],
        remade_links: &[],
        needs: &["/usr/bin/quasselcore", "/usr/bin/openssl"],
        unit: "appliance-quassel-cert.service",
        what: "Quassel core's TLS key and certificate",
        reader: Reader::Service("quasselcore.service"),
        made: &["/var/lib/quassel/quasselCert.pem"],
        settings: &["User=quasselcore", "UMask=0027"],
        commands: &[
            "/usr/bin/openssl req -x509 -nodes -batch -days 680 -newkey rsa -keyout /var/lib/quassel/quasselCert.pem -out /var/lib/quassel/quasselCert.pem",
        ],
    },
    // sendmail's postinst (through sendmailconfig): the key its server and client
    // certificates share, and those certificates with their requests, each linked from
    // /etc/ssl/certs by the hash of the machine's name. Its own update_tls makes what is
    // missing; the DH parameters beside them are no secret, and stay.
    Secret {
        paths: &[
            "/etc/mail/tls/sendmail-common.key",
            "/etc/mail/tls/sendmail-*.crt",
            "/etc/mail/tls/sendmail-*.csr",
        ],
        remade_links: &["/etc/ssl/certs/*.[0-9]"],
        needs: &[
            "/usr/sbin/sendmail-mta",
            "/usr/share/sendmail/update_tls",
            "/usr/bin/openssl",
        ],
        unit: "appliance-sendmail-tls.service",
        what: "sendmail's TLS key and certificates",
        reader: Reader::Service("sendmail.service"),
        made: &[
            "/etc/mail/tls/sendmail-common.key",
            "/etc/mail/tls/sendmail-server.crt",
            "/etc/mail/tls/sendmail-client.crt",
        ],
        settings: &[],
        commands: &["/usr/share/sendmail/update_tls"],
    },
    // heimdal-kdc's postinst: a random master key, and the realm's database with the
    // random keys of krbtgt and kadmin, which sign and open every ticket of the realm.
    // Made again for the realm the package was configured for (debconf keeps it), each
    // part where it is missing; kadmind starts from inetd, so before any service.
    Secret {
        paths: &[
            "/var/lib/heimdal-kdc/m-key",
            "/var/lib/heimdal-kdc/heimdal.db",
            "/var/lib/heimdal-kdc/log",
        ],
        remade_links: &[],
        needs: &[
            "/usr/lib/heimdal-servers/kdc",
            "/usr/sbin/kstash",
            "/usr/bin/kadmin",
            "/usr/bin/debconf-communicate",
        ],
        unit: "appliance-heimdal-kdc-realm.service",
        what: "The Heimdal KDC's master key and realm database",
        reader: Reader::Boot(&[]),
        made: &[
            "/var/lib/heimdal-kdc/m-key",
            "/var/lib/heimdal-kdc/heimdal.db",
        ],
        settings: &["UMask=0077", "Environment=DEBIAN_FRONTEND=noninteractive"],
        commands: &[
            "/bin/sh -c '[ -s /var/lib/heimdal-kdc/m-key ] || /usr/sbin/kstash -k /var/lib/heimdal-kdc/m-key --random-key'",
            "/bin/sh -c '[ -s /var/lib/heimdal-kdc/heimdal.db ] || { realm=$$(echo get heimdal/realm | /usr/bin/debconf-communicate heimdal-kdc) && /usr/bin/kadmin -l init --realm-max-ticket-life=unlimited --realm-max-renewable-life=unlimited \"$${realm#0 }\"; }'",
        ],
    },
    // nvme-cli's postinst: the host NQN and host id name the machine to NVMe over
    // Fabrics targets, as the machine id names it to systemd; udev's autoconnect rules
    // and nvmf-autoconnect read them. Each is made where it is missing, as there.
    Secret {
        paths: &["/etc/nvme/hostnqn", "/etc/nvme/hostid"],
        remade_links: &[],
        needs: &["/usr/sbin/nvme", "/usr/bin/uuidgen"],
        unit: "appliance-nvme-hostnqn.service",
        what: "The NVMe host NQN and host id",
        reader: Reader::Boot(&[]),
        made: &["/etc/nvme/hostnqn", "/etc/nvme/hostid"],
        settings: &[],
        commands: &[
            "/bin/sh -c '[ -s /etc/nvme/hostnqn ] || /usr/sbin/nvme gen-hostnqn > /etc/nvme/hostnqn'",
            "/bin/sh -c '[ -s /etc/nvme/hostid ] || /usr/bin/uuidgen > /etc/nvme/hostid'",
        ],
    },
    // open-iscsi's postinst: the initiator's name, which targets' access lists name
    // ("Do NOT duplicate iSCSI InitiatorNames"). Made as the package makes it for an
    // image: its own start-up check replaces `GenerateName=yes` with a new name, before
    // iscsid, which starts before sysinit.target.
    Secret {
        paths: &["/etc/iscsi/initiatorname.iscsi"],
        remade_links: &[],
        needs: &["/usr/sbin/iscsid", "/usr/lib/open-iscsi/startup-checks.sh"],
        unit: "appliance-iscsi-initiatorname.service",
        what: "The iSCSI initiator name",
        reader: Reader::Boot(&["iscsid.service"]),
        made: &["/etc/iscsi/initiatorname.iscsi"],
        settings: &[],
        commands: &[
            "/bin/sh -c 'echo GenerateName=yes > /etc/iscsi/initiatorname.iscsi'",
            "/usr/lib/open-iscsi/startup-checks.sh",
        ],
    },
    // pacemaker-common's postinst: the key Pacemaker and Pacemaker Remote nodes
    // authenticate with, read by both daemons. A cluster shares one, as MUNGE shares
    // its key.
    Secret {
        paths: &["/etc/pacemaker/authkey"],
        remade_links: &[],
        needs: &["/etc/default/pacemaker", "/usr/bin/dd"],
        unit: "appliance-pacemaker-authkey.service",
        what: "Pacemaker's authentication key",
        reader: Reader::Boot(&[]),
        made: &["/etc/pacemaker/authkey"],
        settings: &["UMask=0037"],
        commands: &[
            "/usr/bin/dd if=/dev/urandom of=/etc/pacemaker/authkey bs=4096 count=1 status=none",
            "/usr/bin/chgrp haclient /etc/pacemaker/authkey",
        ],
    },
];

/// How a virtual machine's network comes up: its NICs by DHCP, with what the tree has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// systemd-networkd, which the configure stage enables ([`NETWORKD_UNIT`]), with a
    /// `.network` file for the NIC names a kernel or udev gives (`eth0`, `ens3`, `enp0s3`).
    Networkd,
    /// ifupdown, with an `interfaces.d` stanza for the first NIC whose name starts
    /// with `e`.
    Ifupdown,
    /// Neither is in the tree: the machine boots with its NICs down.
    Unmanaged,
}

/// The unit that brings a systemd machine's network up.
pub const NETWORKD_UNIT: &str = "systemd-networkd.service";

/// systemd's own tree marker, as the packages' (merged-/usr) tree holds it.
const SYSTEMD: &str = "/usr/lib/systemd/systemd";

/// How `machine`'s network comes up (`None` for a container, whose network the host
/// sets up: vzctl, a runtime); `has(path)` says whether the tree holds a path.
pub fn network(machine: Machine, has: impl Fn(&str) -> bool) -> Option<Network> {
    if machine == Machine::Container {
        return None;
    }
    Some(
        if has(SYSTEMD) && has("/usr/lib/systemd/systemd-networkd") {
            Network::Networkd
        } else if has("/usr/sbin/ifup") {
            Network::Ifupdown
        } else {
            Network::Unmanaged
        },
    )
}

/// The files `machine` needs that the tree lacks; `has(path)` says whether the packages'
/// tree holds a (merged-/usr) path.
pub fn machine_files(machine: Machine, has: impl Fn(&str) -> bool) -> Generated {
    let mut made = Generated::default();
    let add = |made: &mut Generated, path: &str, mode: u32, content: &str| {
        if !has(path) {
            made.file(
                path,
                mode,
                (0, "root", 0, "root"),
                content.as_bytes().to_vec(),
            );
        }
    };
    // systemd's own mode for it; empty means "not yet made on this machine".
    add(&mut made, "/etc/machine-id", 0o444, "");
    add(&mut made, "/etc/hosts", 0o644, HOSTS);
    add(&mut made, "/etc/resolv.conf", 0o644, RESOLV_CONF);
    let fstab = match machine {
        Machine::Container => CONTAINER_FSTAB.to_string(),
        Machine::Virtual => virtual_fstab(),
    };
    add(&mut made, "/etc/fstab", 0o644, &fstab);
    match network(machine, &has) {
        Some(Network::Networkd) => add(&mut made, NETWORKD_FILE, 0o644, NETWORKD_DHCP),
        Some(Network::Ifupdown) => {
            // ifupdown's postinst writes one that sources interfaces.d; a tree it did
            // not configure gets the same.
            add(&mut made, "/etc/network/interfaces", 0o644, INTERFACES);
            add(&mut made, IFUPDOWN_FILE, 0o644, IFUPDOWN_DHCP);
        }
        Some(Network::Unmanaged) | None => {}
    }
    let systemd = has(SYSTEMD);
    for secret in (SECRETS.iter()).filter(|s| systemd && s.needs.iter().all(|p| has(p))) {
        let unit = secret.unit;
        add(
            &mut made,
            &format!("/etc/systemd/system/{unit}"),
            0o644,
            &secret.text(),
        );
        made.symlink(
            &format!("/etc/systemd/system/{}/{unit}", secret.linked_in()),
            &format!("../{unit}"),
        );
    }
    // systemd-firstboot asks for a locale, a time zone and a root password on the
    // console of a machine it takes for new, which would hold up an appliance's boot.
    if machine == Machine::Virtual && systemd {
        made.symlink("/etc/systemd/system/systemd-firstboot.service", "/dev/null");
    }
    // A container has no virtual terminals: its one login is on the console vzctl (or
    // the runtime) attaches to.
    if machine == Machine::Container
        && systemd
        && has("/usr/lib/systemd/system/console-getty.service")
    {
        made.symlink(
            "/etc/systemd/system/getty.target.wants/console-getty.service",
            "/lib/systemd/system/console-getty.service",
        );
    }
    made
}

/// The loopback names every Debian installer writes (netbase's `/etc/hosts`).
const HOSTS: &str = "127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n";

/// `/etc/hosts` for a machine whose `/etc/hostname` holds `hostname`, in place of the
/// table whose BLAKE3 is `digest`: when that is a stock table (the one above, or
/// netbase's postinst's, which ends in a blank line), the same with `127.0.0.1`'s line
/// followed by `127.0.1.1` and the machine's name, as the Debian installer writes it
/// (the full name, then its first label), so that programs that look their host up
/// (apache2, collectd, sudo) find it with no DNS. `None` for any other table, or unless
/// `hostname` is one host name (RFC 1123 labels, dots between) on one line.
pub fn hosts_naming(digest: &str, hostname: &[u8]) -> Option<Vec<u8>> {
    let stock = [HOSTS.to_string(), format!("{HOSTS}\n")];
    let table = stock
        .iter()
        .find(|t| blake3::hash(t.as_bytes()).to_hex().as_str() == digest)?;
    let name = std::str::from_utf8(hostname).ok()?;
    let name = name.strip_suffix('\n').unwrap_or(name);
    let label = |l: &str| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.len() > 253 || !name.split('.').all(label) {
        return None;
    }
    let names = match name.split_once('.') {
        Some((short, _)) => format!("{name}\t{short}"),
        None => name.to_string(),
    };
    let (loopback, rest) = table.split_at(table.find('\n')? + 1);
    Some(format!("{loopback}127.0.1.1\t{names}\n{rest}").into_bytes())
}

/// Present so resolvers find the file; the nameservers are the machine's to set (vzctl
/// `--nameserver`, DHCP, a runtime's bind mount).
const RESOLV_CONF: &str = "# nameservers are set when the appliance is deployed\n";

/// The host mounts a container's root and its devices; only virtual filesystems here.
const CONTAINER_FSTAB: &str = "# <file system> <mount point> <type> <options> <dump> <pass>\nproc /proc proc defaults 0 0\ndevpts /dev/pts devpts rw,gid=5,mode=620 0 0\n";

fn virtual_fstab() -> String {
    format!(
        "# <file system> <mount point> <type> <options> <dump> <pass>\nLABEL={ROOT_LABEL} / ext4 errors=remount-ro 0 1\n"
    )
}

/// Where the networkd configuration goes: after any a group's own files name with a
/// lower number, so those win.
const NETWORKD_FILE: &str = "/etc/systemd/network/90-appliance-dhcp.network";

/// Every NIC of the usual names, by DHCP: the kernel's `eth0` (the initramfs loads the
/// driver before udev runs) and udev's predictable `en*` names.
const NETWORKD_DHCP: &str = "# The machine's NICs, by DHCP (written by appliance)\n[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n";

const IFUPDOWN_FILE: &str = "/etc/network/interfaces.d/appliance-dhcp";

/// What ifupdown's postinst writes.
const INTERFACES: &str = "# interfaces(5) file used by ifup(8) and ifdown(8)\n# Include files from /etc/network/interfaces.d:\nsource /etc/network/interfaces.d/*\n";

/// The first NIC whose name starts with `e` (`eth0`, `ens3`), whatever udev calls it,
/// as the logical interface `nic` (interfaces(5), "pattern matching interfaces").
const IFUPDOWN_DHCP: &str =
    "# The first NIC, by DHCP (written by appliance)\nauto /e*/1=nic\niface nic inet dhcp\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_a_plain_word() {
        // The configure script takes them as one variable, split at blanks and expanded
        // as patterns. (That capture drops each is capture's test.)
        for placeholder in PLACEHOLDERS {
            let plain = |c: char| !c.is_whitespace() && !matches!(c, '*' | '?' | '[');
            assert!(placeholder.chars().all(plain), "{placeholder}");
        }
    }

    fn paths(made: &Generated) -> Vec<&str> {
        made.entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn a_container_gets_virtual_mounts_only_and_an_empty_machine_id() {
        let made = machine_files(Machine::Container, |_| false);
        assert_eq!(
            paths(&made),
            [
                "/etc/machine-id",
                "/etc/hosts",
                "/etc/resolv.conf",
                "/etc/fstab"
            ]
        );
        assert_eq!(made.content("/etc/machine-id"), "");
        let fstab = made.content("/etc/fstab");
        for line in fstab.lines().filter(|l| !l.starts_with('#')) {
            let source = line.split_whitespace().next().unwrap();
            assert!(
                !source.starts_with('/') && !source.contains('='),
                "a block device in a container's fstab: {line}"
            );
        }
        assert!(
            made.content("/etc/hosts")
                .starts_with("127.0.0.1\tlocalhost\n")
        );
    }

    #[test]
    fn a_machine_s_hosts_name_it_as_the_installer_does() {
        let digest = |text: &str| blake3::hash(text.as_bytes()).to_hex().to_string();
        let netbase = format!("{HOSTS}\n");
        let named = |table: &str, name: &str| {
            hosts_naming(&digest(table), name.as_bytes()).map(|h| String::from_utf8(h).unwrap())
        };
        let web = named(HOSTS, "web\n").unwrap();
        assert!(
            web.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tweb\n::1\t"),
            "{web}"
        );
        assert!(web.ends_with(HOSTS.split_once('\n').unwrap().1));
        let full = named(&netbase, "web.example.org").unwrap();
        assert!(
            full.contains("\n127.0.1.1\tweb.example.org\tweb\n"),
            "{full}"
        );
        assert!(
            full.ends_with("ip6-allrouters\n\n"),
            "netbase's blank line stays"
        );
        for bad in [
            "",
            "\n",
            "web\nweb\n",
            "web server",
            "-web",
            "web.",
            "a..b",
            "w\u{e9}b",
        ] {
            assert_eq!(named(HOSTS, bad), None, "{bad:?}");
        }
        assert_eq!(named(HOSTS, &"a".repeat(64)), None);
        // A table that names more than the loopback is someone's: it stays.
        assert_eq!(named(&web, "db"), None);
        assert_eq!(named("127.0.0.1 localhost\n10.0.0.2 db\n", "web"), None);
    }

    #[test]
    fn each_secret_a_tree_can_make_gets_its_first_boot_unit() {
        let tree: &[&str] = &[
            "/usr/lib/systemd/systemd",
            "/usr/sbin/sshd",
            "/usr/bin/ssh-keygen",
            "/usr/sbin/make-ssl-cert",
            // rabbitmq-server without openssl: nothing would make its cookie.
            "/usr/sbin/rabbitmq-server",
        ];
        let made = machine_files(Machine::Container, |p| tree.contains(&p));
        let listed = paths(&made);
        for wanted in [
            "/etc/systemd/system/appliance-ssh-hostkeys.service",
            "/etc/systemd/system/ssh.service.requires/appliance-ssh-hostkeys.service",
            "/etc/systemd/system/appliance-ssl-snakeoil.service",
            "/etc/systemd/system/sysinit.target.wants/appliance-ssl-snakeoil.service",
        ] {
            assert!(listed.contains(&wanted), "{wanted} in {listed:?}");
        }
        assert!(!listed.iter().any(|p| p.contains("rndc")), "{listed:?}");
        assert!(!listed.iter().any(|p| p.contains("rabbitmq")), "{listed:?}");
        let unit = made.content("/etc/systemd/system/appliance-ssl-snakeoil.service");
        assert!(
            unit.contains("ExecStart=/usr/sbin/make-ssl-cert generate-default-snakeoil"),
            "{unit}"
        );
        // Without systemd nothing would start them.
        let made = machine_files(Machine::Container, |p| p == "/usr/sbin/make-ssl-cert");
        assert!(!paths(&made).iter().any(|p| p.contains("appliance-")));
    }

    #[test]
    fn each_secret_is_made_once_before_the_service_that_reads_it() {
        for secret in &SECRETS {
            let text = &secret.text();
            let linked_in = secret.linked_in();
            let service = linked_in.trim_end_matches(".requires");
            if service.ends_with(".service") {
                assert!(text.contains(&format!("\nBefore={service}\n")), "{text}");
                assert!(
                    text.contains(&format!("\nRequiredBy={service}\n")),
                    "{text}"
                );
                // Besides the tools its commands run: a tree with openssl but without
                // the service gets no unit.
                let runs = |program: &str| {
                    (secret.commands.iter())
                        .any(|c| c.split_whitespace().any(|word| word == program))
                };
                let service_program = secret.needs.iter().any(|p| !runs(p));
                assert!(
                    service_program,
                    "{} needs its service's program",
                    secret.unit
                );
            }
            // Made only where the machine has none: a group's own file wins.
            let conditions: Vec<&str> = (text.lines())
                .filter_map(|l| l.strip_prefix("ConditionPathExists="))
                .map(|c| c.trim_start_matches('|').trim_start_matches('!'))
                .collect();
            assert!(!conditions.is_empty(), "{} has no condition", secret.unit);
            for condition in conditions {
                let covered = (secret.paths.iter()).any(|glob| {
                    globset::Glob::new(glob)
                        .unwrap()
                        .compile_matcher()
                        .is_match(condition)
                });
                assert!(covered, "{condition} is not among {:?}", secret.paths);
            }
            assert!(text.contains("Type=oneshot"), "{text}");
        }
    }

    #[test]
    fn a_secret_of_several_files_is_made_where_any_is_missing() {
        let tree = [SYSTEMD, "/usr/sbin/nvme", "/usr/bin/uuidgen"];
        let made = machine_files(Machine::Virtual, |p| tree.contains(&p));
        let unit = made.content("/etc/systemd/system/appliance-nvme-hostnqn.service");
        assert!(
            unit.contains(
                "\nConditionPathExists=|!/etc/nvme/hostnqn\nConditionPathExists=|!/etc/nvme/hostid\n"
            ),
            "{unit}"
        );
        // A group's own host NQN (a target's ACL names it) stays; the id is still made.
        assert!(unit.contains("'[ -s /etc/nvme/hostnqn ] || /usr/sbin/nvme gen-hostnqn >"));
        assert!(unit.contains("'[ -s /etc/nvme/hostid ] || /usr/bin/uuidgen >"));
        let link = "/etc/systemd/system/sysinit.target.wants/appliance-nvme-hostnqn.service";
        assert!(paths(&made).contains(&link));
    }

    #[test]
    fn a_secret_a_service_reads_before_sysinit_is_made_before_that_service() {
        let tree = [
            SYSTEMD,
            "/usr/sbin/iscsid",
            "/usr/lib/open-iscsi/startup-checks.sh",
        ];
        let made = machine_files(Machine::Container, |p| tree.contains(&p));
        let unit = made.content("/etc/systemd/system/appliance-iscsi-initiatorname.service");
        // iscsid has no default dependencies: a unit ordered after sysinit.target (as
        // one for a service is) would make a cycle, so this one runs before both.
        assert!(
            unit.contains("DefaultDependencies=no\nAfter=local-fs.target\nBefore=sysinit.target iscsid.service\n"),
            "{unit}"
        );
        assert!(
            unit.ends_with("[Install]\nWantedBy=sysinit.target\n"),
            "{unit}"
        );
        // The package's own start-up check makes the name from its placeholder.
        let placeholder = unit.find("GenerateName=yes").unwrap();
        assert!(
            placeholder
                < unit
                    .find("ExecStart=/usr/lib/open-iscsi/startup-checks.sh")
                    .unwrap()
        );
    }

    #[test]
    fn a_virtual_machine_mounts_the_image_root_by_label() {
        let made = machine_files(Machine::Virtual, |_| false);
        assert!(
            made.content("/etc/fstab")
                .contains("LABEL=appliance-root / ext4 errors=remount-ro 0 1")
        );
    }

    #[test]
    fn a_virtual_machine_brings_its_nics_up_with_what_the_tree_has() {
        let systemd: &[&str] = &[
            "/usr/lib/systemd/systemd",
            "/usr/lib/systemd/systemd-networkd",
        ];
        let has = |tree: &'static [&'static str]| move |p: &str| tree.contains(&p);
        assert_eq!(
            network(Machine::Virtual, has(systemd)),
            Some(Network::Networkd)
        );
        let made = machine_files(Machine::Virtual, has(systemd));
        let file = made.content("/etc/systemd/network/90-appliance-dhcp.network");
        assert!(
            file.contains("[Match]\nName=en* eth*\n") && file.contains("[Network]\nDHCP=yes\n"),
            "{file}"
        );
        let firstboot = made
            .entries
            .iter()
            .find(|e| e.path == "/etc/systemd/system/systemd-firstboot.service");
        assert_eq!(
            firstboot.and_then(|e| e.target.as_deref()),
            Some("/dev/null"),
            "no wizard waits on the console"
        );

        // A container's network is the host's business: nothing changes there.
        assert_eq!(network(Machine::Container, has(systemd)), None);
        let container = machine_files(Machine::Container, has(systemd));
        assert!(
            !paths(&container)
                .iter()
                .any(|p| p.contains("network") || p.contains("firstboot")),
            "{:?}",
            paths(&container)
        );

        let ifupdown: &[&str] = &["/usr/sbin/ifup", "/etc/network/interfaces"];
        assert_eq!(
            network(Machine::Virtual, has(ifupdown)),
            Some(Network::Ifupdown)
        );
        let made = machine_files(Machine::Virtual, has(ifupdown));
        assert!(
            !paths(&made).contains(&"/etc/network/interfaces"),
            "ifupdown's own stays"
        );
        let stanza = made.content("/etc/network/interfaces.d/appliance-dhcp");
        assert!(
            stanza.contains("auto /e*/1=nic\niface nic inet dhcp\n"),
            "{stanza}"
        );
        let unconfigured = machine_files(Machine::Virtual, has(&["/usr/sbin/ifup"]));
        assert!(
            unconfigured
                .content("/etc/network/interfaces")
                .contains("source /etc/network/interfaces.d/*")
        );

        assert_eq!(
            network(Machine::Virtual, |_| false),
            Some(Network::Unmanaged)
        );
    }

    #[test]
    fn systemd_trees_make_ssh_keys_on_first_boot_and_a_console_getty() {
        let tree = [
            "/usr/lib/systemd/systemd",
            "/usr/sbin/sshd",
            "/usr/bin/ssh-keygen",
            "/usr/lib/systemd/system/console-getty.service",
            "/etc/hosts",
        ];
        let made = machine_files(Machine::Container, |p| tree.contains(&p));
        let paths = paths(&made);
        assert!(!paths.contains(&"/etc/hosts"), "the package's file stays");
        assert!(paths.contains(&"/etc/systemd/system/appliance-ssh-hostkeys.service"));
        let unit = made.content("/etc/systemd/system/appliance-ssh-hostkeys.service");
        assert!(unit.contains("ExecStart=/usr/bin/ssh-keygen -A"), "{unit}");
        let link = |path: &str| {
            made.entries
                .iter()
                .find(|e| e.path == path)
                .and_then(|e| e.target.clone())
        };
        assert_eq!(
            link("/etc/systemd/system/ssh.service.requires/appliance-ssh-hostkeys.service")
                .as_deref(),
            Some("../appliance-ssh-hostkeys.service")
        );
        assert_eq!(
            link("/etc/systemd/system/getty.target.wants/console-getty.service").as_deref(),
            Some("/lib/systemd/system/console-getty.service")
        );

        let vm = machine_files(Machine::Virtual, |p| tree.contains(&p));
        assert!(
            !super::tests::paths(&vm)
                .iter()
                .any(|p| p.contains("console-getty")),
            "a virtual machine logs in on its serial console, which systemd finds itself"
        );
    }
}
