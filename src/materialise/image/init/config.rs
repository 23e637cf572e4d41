//! What appliance's init needs to know, as written into the initramfs: one `key value`
//! line each, values escaped (`\\` and `\n`) so that any string survives.
//!
//! This file is compiled twice: into the library, which renders it when it builds an
//! image, and into the init (with `--cfg appliance_init`), which parses it at boot. One
//! definition of the format serves both sides, and so do the words the init says on the
//! console that `appliance boot` waits for.

/// Where the configuration sits in the initramfs.
pub const PATH: &str = "/init.conf";

/// How each line the init writes on the console begins.
pub const SAYS: &str = "appliance-init: ";

/// What the init says, after the group's name, as it starts the guest's program
/// (`appliance-init: GROUP up, running PROGRAM`): the console is the program's from
/// then on, and `appliance boot` types its input only then.
pub const UP: &str = " up, running ";

/// The boot plan of one image.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// The group the image was built from, for the init's messages.
    pub group: String,
    /// The root disk's device (`/dev/vda`); a `root=` kernel parameter overrides it.
    pub root: String,
    /// The root disk's filesystem type (`ext4`).
    pub fstype: String,
    /// Initramfs paths of the kernel modules, in the order they must be loaded.
    pub modules: Vec<String>,
    /// The program to run when the kernel passes none and the disk has no `/sbin/init`
    /// (the lock's `cmd`); empty means `/bin/sh`.
    pub cmd: Vec<String>,
}

impl Config {
    /// The configuration as the text the init reads.
    #[cfg(not(appliance_init))]
    pub fn render(&self) -> String {
        let mut lines = vec![
            ("group", &self.group),
            ("root", &self.root),
            ("fstype", &self.fstype),
        ];
        lines.extend(self.modules.iter().map(|m| ("module", m)));
        lines.extend(self.cmd.iter().map(|c| ("cmd", c)));
        let mut text = String::from("# appliance-init configuration, made with the image\n");
        for (key, value) in lines {
            text.push_str(key);
            text.push(' ');
            text.push_str(&value.replace('\\', "\\\\").replace('\n', "\\n"));
            text.push('\n');
        }
        text
    }

    /// Reads the text [`Config::render`] writes; a line it cannot read is an error
    /// naming the line.
    #[cfg(any(appliance_init, test))]
    pub fn parse(text: &str) -> Result<Config, String> {
        let mut config = Config::default();
        for (number, line) in text.lines().enumerate() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: &str| format!("{PATH} line {}: {why}: {line}", number + 1);
            let (key, raw) = line.split_once(' ').ok_or_else(|| bad("no value"))?;
            let value = unescape(raw).ok_or_else(|| bad("bad escape"))?;
            match key {
                "group" => config.group = value,
                "root" => config.root = value,
                "fstype" => config.fstype = value,
                "module" => config.modules.push(value),
                "cmd" => config.cmd.push(value),
                _ => return Err(bad("unknown key")),
            }
        }
        if config.root.is_empty() || config.fstype.is_empty() {
            return Err(format!("{PATH} names no root device or no filesystem type"));
        }
        Ok(config)
    }
}

#[cfg(any(appliance_init, test))]
fn unescape(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            _ => return None,
        }
    }
    Some(out)
}
