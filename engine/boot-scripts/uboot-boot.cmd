# Airlock A/B boot for U-Boot: a boot script.
# Compile it with: mkimage -A arm64 -T script -C none -d uboot-boot.cmd boot.scr
#
# Airlock's `uboot` backend keeps two variables in the U-Boot environment (located on Linux by
# the fw_env.config named under [boot] in airlock.toml; it must describe the same place as
# U-Boot's CONFIG_ENV_OFFSET / CONFIG_ENV_OFFSET_REDUND / CONFIG_ENV_SIZE):
#
#   airlock_primary  a|b   the committed slot, booted whenever no trial is pending (unset = a)
#   airlock_trial    a|b   a one-shot trial: the next boot tries this slot once
#
# This script boots the trial slot once: it deletes airlock_trial and runs saveenv BEFORE
# booting the trial slot, so if that slot never comes up (hang, panic, watchdog reset), the next
# boot is the primary slot again and Airlock on the primary records a rollback. Only
# `airlock commit` (after every check passed on the new slot) changes airlock_primary.
#
# The kernel learns which slot it runs from `airlock.slot=a|b` in bootargs: keep it.
#
# Save the environment once (`saveenv`) when you provision a board: Airlock refuses to write a
# fresh environment over U-Boot's built-in defaults.
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
airlock_kernel=/boot/Image
airlock_fdt=/boot/board.dtb
airlock_cmdline="ro rootwait console=ttyS0,115200"

# --- Slot selection: no changes needed below --------------------------------------------------

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
    if saveenv; then
        airlock_slot=${airlock_try}
    else
        # Booting the trial without consuming it could retry a broken slot forever.
        echo "airlock: saveenv failed; not trying slot ${airlock_try}, booting ${airlock_slot}"
    fi
fi

if test "${airlock_slot}" = "b"; then
    airlock_part=${airlock_b_part}
else
    airlock_part=${airlock_a_part}
fi

echo "airlock: booting slot ${airlock_slot} (${airlock_iface} ${airlock_devnum}:${airlock_part})"
setenv bootargs "${airlock_cmdline} root=${airlock_rootdisk}${airlock_part} airlock.slot=${airlock_slot}"
load ${airlock_iface} ${airlock_devnum}:${airlock_part} ${kernel_addr_r} ${airlock_kernel}
load ${airlock_iface} ${airlock_devnum}:${airlock_part} ${fdt_addr_r} ${airlock_fdt}
booti ${kernel_addr_r} - ${fdt_addr_r}

# booti returns only on failure: reset, and the next boot (trial consumed) is the primary slot.
echo "airlock: booting slot ${airlock_slot} failed; resetting"
reset
