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
# the mounted file, offset 0, the same size). airlock_envfile_redund names a second file: a
# redundant pair (two lines in fw_env.config), so that a power cut while one is rewritten leaves
# the other.
airlock_envfile=
airlock_envfile_redund=
airlock_envpart=1
airlock_envsize=0x4000

# --- Slot selection: no changes needed below --------------------------------------------------

# The environment file(s), into memory the kernel is loaded to later (not ${scriptaddr}: this
# script runs from there). A single file is what env import -c reads: CRC, then the variables.
# A redundant copy has a flags byte between the two; moved one byte up, its CRC sits next to
# its variables again. Of two valid copies the one with the higher flags is current (0 follows
# 255), as for fw_setenv and Airlock. No valid file leaves the variables unset: slot a.
airlock_envaddr=${kernel_addr_r}
airlock_current=none
if test -n "${airlock_envfile}"; then
    setexpr airlock_envaddr2 ${airlock_envaddr} + ${airlock_envsize}
    setexpr airlock_tmp ${airlock_envaddr2} + ${airlock_envsize}
    setexpr airlock_envsize1 ${airlock_envsize} - 1
    setexpr airlock_crc1 ${airlock_envaddr} + 1
    setexpr airlock_crc2 ${airlock_envaddr2} + 1
    if load ${airlock_iface} ${airlock_devnum}:${airlock_envpart} ${airlock_envaddr} ${airlock_envfile}; then
        if test -z "${airlock_envfile_redund}"; then
            if env import -c ${airlock_envaddr} ${airlock_envsize} airlock_primary airlock_trial; then
                airlock_current=1
            fi
        else
            setexpr airlock_flagaddr ${airlock_envaddr} + 4
            setexpr.b airlock_flags1 *${airlock_flagaddr}
            cp.b ${airlock_envaddr} ${airlock_tmp} 4
            cp.b ${airlock_tmp} ${airlock_crc1} 4
            if env import -c ${airlock_crc1} ${airlock_envsize1} airlock_primary airlock_trial; then
                airlock_current=1
            fi
        fi
    fi
    if test -n "${airlock_envfile_redund}"; then
        if load ${airlock_iface} ${airlock_devnum}:${airlock_envpart} ${airlock_envaddr2} ${airlock_envfile_redund}; then
            setexpr airlock_flagaddr ${airlock_envaddr2} + 4
            setexpr.b airlock_flags2 *${airlock_flagaddr}
            cp.b ${airlock_envaddr2} ${airlock_tmp} 4
            cp.b ${airlock_tmp} ${airlock_crc2} 4
            if env import -c ${airlock_crc2} ${airlock_envsize1} airlock_primary airlock_trial; then
                # Both valid: the second is current if its flags are higher (their difference
                # below 0x100), or if it follows 0xff.
                if test "${airlock_current}" = 1; then
                    setexpr airlock_diff ${airlock_flags2} - ${airlock_flags1}
                    setexpr airlock_high ${airlock_diff} / 100
                    if test "${airlock_high}" = 0 && test "${airlock_diff}" != 0; then
                        airlock_current=2
                    fi
                    if test "${airlock_flags1}" = ff && test "${airlock_flags2}" = 0; then
                        airlock_current=2
                    fi
                    if test "${airlock_flags1}" = 0 && test "${airlock_flags2}" = ff; then
                        airlock_current=1
                    fi
                else
                    airlock_current=2
                fi
            fi
        fi
        # Only the current copy's variables: an import keeps what the other one set and it lacks.
        setenv airlock_primary
        setenv airlock_trial
        if test "${airlock_current}" = 1; then
            env import -c ${airlock_crc1} ${airlock_envsize1} airlock_primary airlock_trial
        fi
        if test "${airlock_current}" = 2; then
            env import -c ${airlock_crc2} ${airlock_envsize1} airlock_primary airlock_trial
        fi
    fi
    if test "${airlock_current}" = none; then
        echo "airlock: no valid ${airlock_envfile} ${airlock_envfile_redund}; booting slot a"
    else
        echo "airlock: read environment copy ${airlock_current}"
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
        if test -z "${airlock_envfile_redund}"; then
            if env export -c -s ${airlock_envsize} ${airlock_envaddr} airlock_primary; then
                if fatwrite ${airlock_iface} ${airlock_devnum}:${airlock_envpart} ${airlock_envaddr} ${airlock_envfile} ${airlock_envsize}; then
                    airlock_saved=yes
                fi
            fi
        else
            # Into the other copy, with the current copy's flags + 1 (mod 0x100).
            if test "${airlock_current}" = 1; then
                airlock_to=${airlock_envaddr2}
                airlock_tocrc=${airlock_crc2}
                airlock_tofile=${airlock_envfile_redund}
                setexpr airlock_flags ${airlock_flags1} + 1
            else
                airlock_to=${airlock_envaddr}
                airlock_tocrc=${airlock_crc1}
                airlock_tofile=${airlock_envfile}
                setexpr airlock_flags ${airlock_flags2} + 1
            fi
            setexpr airlock_flags ${airlock_flags} % 100
            if env export -c -s ${airlock_envsize1} ${airlock_tocrc} airlock_primary; then
                cp.b ${airlock_tocrc} ${airlock_tmp} 4
                cp.b ${airlock_tmp} ${airlock_to} 4
                setexpr airlock_flagaddr ${airlock_to} + 4
                mw.b ${airlock_flagaddr} ${airlock_flags}
                if fatwrite ${airlock_iface} ${airlock_devnum}:${airlock_envpart} ${airlock_to} ${airlock_tofile} ${airlock_envsize}; then
                    airlock_saved=yes
                fi
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
