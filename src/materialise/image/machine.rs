//! The virtual machine an image is for, from its flavor's flags: which drivers the root
//! disk needs, how the kernel is started (`cmdline`), and for Xen the `xl` domain
//! configuration.

use crate::lang::Flavor;
use crate::materialise::Disk;

use super::ImageError;

/// A hypervisor the image boots on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machine {
    /// KVM or plain qemu: virtio disk and network, serial console.
    Kvm,
    /// A Xen paravirtual guest: blkfront disk, netfront network, hvc console.
    Xen,
}

impl Machine {
    /// The machine of a lock's canonical flavor string: `xen` flavors are Xen guests,
    /// everything else (`kvm`, or a kernel flavor naming no hypervisor) is a virtio
    /// machine.
    pub fn of_flavor(flavor: &str) -> Result<Machine, ImageError> {
        let parsed = Flavor::parse_canonical(flavor).map_err(|e| ImageError::Flavor {
            flavor: flavor.to_string(),
            reason: e.to_string(),
        })?;
        match (parsed.flag("kvm"), parsed.flag("xen")) {
            (true, true) => Err(ImageError::Flavor {
                flavor: flavor.to_string(),
                reason: "it has both kvm and xen on: an image is for one of them".to_string(),
            }),
            (_, true) => Ok(Machine::Xen),
            _ => Ok(Machine::Kvm),
        }
    }

    /// The modules the root disk (and the network) need on this machine; ext4 first.
    pub fn root_modules(self) -> &'static [&'static str] {
        match self {
            Machine::Kvm => &["ext4", "virtio_pci", "virtio_blk", "virtio_net"],
            Machine::Xen => &["ext4", "xen-blkfront", "xen-netfront"],
        }
    }

    /// The root disk as the guest's kernel names it.
    pub fn root_device(self) -> &'static str {
        match self {
            Machine::Kvm => "/dev/vda",
            Machine::Xen => "/dev/xvda",
        }
    }

    /// The kernel command line. `panic=-1` turns a panic into a reboot, which
    /// `qemu -no-reboot` and xl's `on_reboot` turn into the end of the machine.
    pub fn cmdline(self) -> String {
        let console = match self {
            Machine::Kvm => "ttyS0",
            Machine::Xen => "hvc0",
        };
        format!("console={console} root={} panic=-1", self.root_device())
    }

    /// The `xl create` configuration of a Xen guest whose files are beside it. Their
    /// paths are relative, so that the folder works wherever it is copied (a dom0 is
    /// seldom the machine that built it); xl reads them from the folder it runs in:
    /// `cd OUT && xl create xen.cfg`.
    pub fn xen_cfg(name: &str, disk: Disk) -> Result<String, ImageError> {
        if matches!(disk, Disk::Vmdk) {
            return Err(ImageError::XenVmdk);
        }
        let format = disk.as_str();
        Ok(format!(
            "# xl domain configuration; its paths are relative to this folder, so start it\n\
             # from here: cd THIS-FOLDER && xl create xen.cfg\n\
             name = \"{name}\"\n\
             type = \"pv\"\n\
             kernel = \"vmlinuz\"\n\
             ramdisk = \"initrd.img\"\n\
             extra = \"{extra}\"\n\
             memory = 512\n\
             vcpus = 1\n\
             disk = [ \"format={format}, vdev=xvda, access=rw, target=disk.{format}\" ]\n\
             # One NIC (xen-netfront), which the guest brings up by DHCP, on xl.conf's default\n\
             # bridge (xenbr0 unless set there); [ \"bridge=NAME\" ] picks another.\n\
             vif = [ \"\" ]\n\
             on_poweroff = \"destroy\"\n\
             on_reboot = \"destroy\"\n\
             on_crash = \"destroy\"\n",
            extra = Machine::Xen.cmdline(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors_choose_the_machine() {
        assert_eq!(
            Machine::of_flavor("[kernel,kvm is: x86_64]").unwrap(),
            Machine::Kvm
        );
        assert_eq!(
            Machine::of_flavor("[kernel,xen is: x86_64]").unwrap(),
            Machine::Xen
        );
        assert_eq!(
            Machine::of_flavor("[kernel is: x86_64]").unwrap(),
            Machine::Kvm
        );
        let err = Machine::of_flavor("[kvm,xen is: x86_64]").unwrap_err();
        assert!(err.to_string().contains("both kvm and xen"), "{err}");
    }

    #[test]
    fn cmdlines_and_disk_modules_fit_the_machine() {
        assert_eq!(
            Machine::Kvm.cmdline(),
            "console=ttyS0 root=/dev/vda panic=-1"
        );
        assert_eq!(
            Machine::Xen.cmdline(),
            "console=hvc0 root=/dev/xvda panic=-1"
        );
        assert!(Machine::Kvm.root_modules().contains(&"virtio_blk"));
        assert!(Machine::Xen.root_modules().contains(&"xen-blkfront"));
    }

    #[test]
    fn xen_cfg_names_the_image_files_beside_it() {
        let cfg = Machine::xen_cfg("web", Disk::Qcow2).unwrap();
        assert!(cfg.contains("\nname = \"web\"\n"), "{cfg}");
        assert!(cfg.contains("\nkernel = \"vmlinuz\"\n"), "{cfg}");
        assert!(cfg.contains("\nramdisk = \"initrd.img\"\n"), "{cfg}");
        assert!(
            cfg.contains("\nextra = \"console=hvc0 root=/dev/xvda panic=-1\"\n"),
            "{cfg}"
        );
        assert!(
            cfg.contains("[ \"format=qcow2, vdev=xvda, access=rw, target=disk.qcow2\" ]"),
            "{cfg}"
        );
        assert!(
            cfg.contains("\nvif = [ \"\" ]\n"),
            "the guest has a NIC: {cfg}"
        );
        assert!(
            !cfg.contains("= \"/") && !cfg.contains("target=/"),
            "no absolute path: {cfg}"
        );
        assert!(matches!(
            Machine::xen_cfg("web", Disk::Vmdk),
            Err(ImageError::XenVmdk)
        ));
    }
}
