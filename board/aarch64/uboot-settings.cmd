# The reference board's settings for engine/boot-scripts/uboot-boot.cmd (QEMU virt, one virtio
# disk): board/build-image puts them in place of the script's own and compiles it to boot.scr.
airlock_iface=virtio
airlock_devnum=0
airlock_a_part=2
airlock_b_part=3
airlock_rootdisk=/dev/vda
airlock_kernel=/boot/vmlinuz
airlock_initrd=/boot/initrd.img
airlock_fdt=
airlock_cmdline="ro rootwait console=ttyAMA0 panic=5"
airlock_envfile=airlock/uboot.env
airlock_envfile_redund=airlock/uboot-redund.env
airlock_envpart=1
airlock_envsize=0x4000
