# Airlock A/B boot for U-Boot: a boot script.
# Compile it with: mkimage -A arm64 -T script -C none -d uboot-boot.cmd boot.scr
#
# Airlock's `uboot` backend keeps two variables in a U-Boot environment (located on Linux by
# the fw_env.config named under [boot] in airlock.toml):
#
#   airlock_primary  a|b   the committed slot, booted whenever no trial is pending (unset = a)
#   airlock_trial    a|b   a one-shot trial: the next boot tries this slot once
#
# That environment is either U-Boot's own (fw_env.config describes the place U-Boot saves it:
# CONFIG_ENV_OFFSET / CONFIG_ENV_OFFSET_REDUND / CONFIG_ENV_SIZE), or, where U-Boot cannot save
# its environment somewhere Linux reaches, a file of its own on a FAT partition (airlock_envfile
# below; fw_env.config names the same file), which this script imports and writes back itself.
#
# This script boots the trial slot once: it deletes airlock_trial and saves the environment
# BEFORE booting the trial slot, so if that slot never comes up (hang, panic, watchdog reset),
# the next boot is the primary slot again and Airlock on the primary records a rollback. Only
# `airlock commit` (after every check passed on the new slot) changes airlock_primary.
#
# The kernel learns which slot it runs from `airlock.slot=a|b` in bootargs: keep it.
#
# Save the environment once when you provision a board (`saveenv`, or for a file `mkenvimage`):
# Airlock refuses to write a fresh environment over one it cannot read.
#
# Plain `name=value` assignments below are hush shell variables: unlike setenv they are not
# written to flash by saveenv.

# --- Integrator settings: adapt these to your board ------------------------------------------

# The boot medium, and each slot's root partition number on it.
airlock_iface=mmc
airlock_devnum=0
airlock_a_part=2
airlock_b_part=3
# How the kernel names that disk (root=${airlock_rootdisk}${partition}).
airlock_rootdisk=/dev/mmcblk0p
# Paths inside each slot's root filesystem; load addresses come from the board's environment.
# No initrd: leave airlock_initrd empty. No device tree file: leave airlock_fdt empty, and the
# kernel gets the one U-Boot runs with (${fdtcontroladdr}, e.g. what QEMU or the firmware gave).
airlock_kernel=/boot/Image
airlock_initrd=
airlock_fdt=/boot/board.dtb
airlock_cmdline="ro rootwait console=ttyS0,115200"
# Where Airlock's variables live: empty for U-Boot's own environment (saveenv), or a file on the
# FAT partition airlock_envpart of the boot medium, airlock_envsize bytes (fw_env.config:
# the mounted file, offset 0, the same size).
airlock_envfile=
airlock_envpart=1
airlock_envsize=0x4000

# --- Slot selection: no changes needed below --------------------------------------------------

# The environment file, into memory the kernel is loaded to later (not ${scriptaddr}: this
# script runs from there). A file that cannot be read leaves the variables unset: slot a.
airlock_envaddr=${kernel_addr_r}
if test -n "${airlock_envfile}"; then
    if load ${airlock_iface} ${airlock_devnum}:${airlock_envpart} ${airlock_envaddr} ${airlock_envfile}; then
        if env import -c ${airlock_envaddr} ${airlock_envsize} airlock_primary airlock_trial; then
            echo "airlock: read ${airlock_envfile}"
        else
            echo "airlock: ${airlock_envfile} is damaged; booting slot a"
        fi
    else
        echo "airlock: cannot read ${airlock_envfile}; booting slot a"
    fi
fi

# The committed slot; unset (or anything unexpected) means a.
if test "${airlock_primary}" = "b"; then
    airlock_slot=b
else
    airlock_slot=a
fi

# A pending trial? Consume it before booting it.
if test "${airlock_trial}" = "a" || test "${airlock_trial}" = "b"; then
    airlock_try=${airlock_trial}
    setenv airlock_trial
    airlock_saved=no
    if test -n "${airlock_envfile}"; then
        if env export -c -s ${airlock_envsize} ${airlock_envaddr} airlock_primary; then
            if fatwrite ${airlock_iface} ${airlock_devnum}:${airlock_envpart} ${airlock_envaddr} ${airlock_envfile} ${airlock_envsize}; then
                airlock_saved=yes
            fi
        fi
    else
        if saveenv; then
            airlock_saved=yes
        fi
    fi
    if test "${airlock_saved}" = "yes"; then
        airlock_slot=${airlock_try}
    else
        # Booting the trial without consuming it could retry a broken slot forever.
        echo "airlock: cannot save the environment; not trying slot ${airlock_try}, booting ${airlock_slot}"
    fi
fi

if test "${airlock_slot}" = "b"; then
    airlock_part=${airlock_b_part}
else
    airlock_part=${airlock_a_part}
fi

echo "airlock: booting slot ${airlock_slot} (${airlock_iface} ${airlock_devnum}:${airlock_part})"
setenv bootargs "${airlock_cmdline} root=${airlock_rootdisk}${airlock_part} airlock.slot=${airlock_slot}"
airlock_rd=-
airlock_dtb=${fdtcontroladdr}
if load ${airlock_iface} ${airlock_devnum}:${airlock_part} ${kernel_addr_r} ${airlock_kernel}; then
    if test -n "${airlock_initrd}"; then
        if load ${airlock_iface} ${airlock_devnum}:${airlock_part} ${ramdisk_addr_r} ${airlock_initrd}; then
            airlock_rd=${ramdisk_addr_r}:${filesize}
        fi
    fi
    if test -n "${airlock_fdt}"; then
        if load ${airlock_iface} ${airlock_devnum}:${airlock_part} ${fdt_addr_r} ${airlock_fdt}; then
            airlock_dtb=${fdt_addr_r}
        fi
    fi
    booti ${kernel_addr_r} ${airlock_rd} ${airlock_dtb}
fi

# booti returns only on failure: reset, and the next boot (trial consumed) is the primary slot.
echo "airlock: booting slot ${airlock_slot} failed; resetting"
reset
