#!/bin/sh
# mdadm 4.2 captures on a lab node (tests/data/raid): a RAID 1 of two loop devices
set -u
out=/root/mdcap; rm -rf $out; mkdir -p $out; cd $out
mdadm --version > mdadm-version.txt 2>&1
cp /etc/mdadm/mdadm.conf mdadm-conf-debian.txt
for i in a b; do rm -f /root/md-$i.img; truncate -s 256M /root/md-$i.img; done
A=$(losetup -f --show /root/md-a.img); B=$(losetup -f --show /root/md-b.img)
echo "$A $B" > loops.txt
mdadm --examine --export $A > examine-blank.txt 2> examine-blank.err; echo "rc=$?" >> examine-blank.err
echo 1000 > /proc/sys/dev/raid/speed_limit_max
mdadm --create /dev/md9 --run --metadata=1.2 --level=1 --raid-devices=2 $A $B > create.out 2>&1 < /dev/null; echo "rc=$?" >> create.out
sleep 2
cat /proc/mdstat > mdstat-resync.txt
mdadm --detail --export /dev/md9 > detail-resync.txt
for f in array_state degraded sync_action; do echo "$f=$(cat /sys/block/md9/md/$f)"; done > sysfs-resync.txt
mdadm --examine --export $A > examine-member.txt
blkid -p -o export $A > blkid-member.txt
ls /sys/class/block/$(basename $A)/holders > holders-member.txt
echo 200000 > /proc/sys/dev/raid/speed_limit_max
mdadm --wait /dev/md9
cat /proc/mdstat > mdstat-clean.txt
mdadm --detail --export /dev/md9 > detail-clean.txt
for f in array_state degraded sync_action; do echo "$f=$(cat /sys/block/md9/md/$f)"; done > sysfs-clean.txt
mdadm /dev/md9 --fail $B > /dev/null 2>&1; mdadm /dev/md9 --remove $B > /dev/null 2>&1
cat /proc/mdstat > mdstat-degraded.txt
mdadm --detail --export /dev/md9 > detail-degraded.txt
for f in array_state degraded sync_action; do echo "$f=$(cat /sys/block/md9/md/$f)"; done > sysfs-degraded.txt
mdadm --stop /dev/md9 > /dev/null 2>&1
# B is stale now; A alone, incrementally, without --run: assembled, not started
mdadm --incremental $A > incremental.out 2>&1; echo "rc=$?" >> incremental.out
cat /proc/mdstat > mdstat-inactive.txt
for f in array_state; do echo "$f=$(cat /sys/block/md*/md/$f 2>&1)"; done > sysfs-inactive.txt
ls /dev/md* > devmd-inactive.txt 2>&1
for md in /dev/md[0-9]*; do [ "$md" = /dev/md0 ] || mdadm --stop $md > /dev/null 2>&1; done
echo 200000 > /proc/sys/dev/raid/speed_limit_max
wipefs -qa $A $B; losetup -d $A $B; rm -f /root/md-a.img /root/md-b.img
cat /proc/mdstat > mdstat-after.txt

# --- then, for the inactive array and the formula's assemble command:
cd /root/mdcap
for i in a b; do rm -f /root/md-$i.img; truncate -s 64M /root/md-$i.img; done
A=$(losetup -f --show /root/md-a.img); B=$(losetup -f --show /root/md-b.img)
mdadm --create /dev/md9 --run --metadata=1.2 --level=1 --raid-devices=2 $A $B < /dev/null > /dev/null 2>&1
mdadm --wait /dev/md9
mdadm --stop /dev/md9 > /dev/null 2>&1
udevadm settle
cat /proc/mdstat > mdstat-stopped.txt
mdadm --incremental $A > incremental2.out 2>&1; echo "rc=$?" >> incremental2.out
cat /proc/mdstat > mdstat-inactive.txt
ls /sys/block/ | grep md > sysblock-inactive.txt
for md in /sys/block/md*; do echo "$md array_state=$(cat $md/md/array_state)"; done > sysfs-inactive.txt

mdadm --stop /dev/md9 > /dev/null 2>&1
# assembled from both members by the formula's command
mdadm --assemble /dev/md9 $A $B > assemble.out 2>&1; echo "rc=$?" >> assemble.out
cat /proc/mdstat > mdstat-assembled.txt
mdadm --stop /dev/md9 > /dev/null 2>&1
wipefs -qa $A $B; losetup -d $A $B; rm -f /root/md-a.img /root/md-b.img
