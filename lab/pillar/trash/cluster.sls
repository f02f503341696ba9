# The example cluster (pillar/trash/cluster.sls) as the lab's two QEMU machines have it
# (lab/README.md): the same names and addresses (the lab wires exactly them), the RAID
# array is a software RAID 1, /dev/md0 of /dev/vdb and /dev/vdc (4 GiB each), that the
# formula creates, and holds only what belongs on an array in the lab — / and
# /var are on the lab's /dev/vda, swap is not needed —, guests are tiny and run under
# TCG (domain_type qemu). The secrets are the example's (secrets.sls is a link to
# pillar/trash/secrets.sls): the lab is not production.
trash:
  cluster:
    name: trashnet
    domain: trash.net
    priority_node: node1
    # the delay must outlast the priority node's own fencing of its peer: under TCG that
    # took 17-23 s (fence_ipmilan on a loaded single vCPU), so the default 15 s lost the
    # race in a drill; on the host 2.5x slower (2026-11-28) it took more than 30 s; real
    # servers fence in a few seconds
    fence_delay: 60
    # a single TCG vCPU always shows a load of 2-7: Pacemaker would throttle itself to one
    # action at a time, which doubled a rejoin's time; but 8 at once (eight agents of 20-28 s
    # each on a host 2.5x slower) starved the controller until pacemakerd killed it
    load_threshold: 2000
    node_action_limit: 4
    # every monitor is an agent run of 10-25 s on a TCG vCPU: at the default 30 s the
    # monitors alone took half of each node's CPU (measured 2026-11-28)
    monitor_interval: 120
    # starts of fence devices (20 s) and of volume groups (90 s) timed out while a node
    # converged and started everything at once (measured 2026-11-28)
    timeout_factor: 3

  nodes:
    node1:
      nodeid: 1
      disk: /dev/md0
      raid: {level: 1, members: [/dev/vdb, /dev/vdc]}
      addresses:
        internet: 192.0.2.11/24
        storage: 10.10.1.1/24
        backchannel: 10.10.2.1/24
        ipmi: 10.10.4.1/30
        serial: 10.10.5.1/30
      gateway: 192.0.2.1
      bmc:
        address: 10.10.4.6
        username: fence
    node2:
      nodeid: 2
      disk: /dev/md0
      raid: {level: 1, members: [/dev/vdb, /dev/vdc]}
      addresses:
        internet: 192.0.2.12/24
        storage: 10.10.1.2/24
        backchannel: 10.10.2.2/24
        ipmi: 10.10.4.5/30
        serial: 10.10.5.2/30
      gateway: 192.0.2.1
      bmc:
        address: 10.10.4.2
        username: fence

  network:
    # the Internet zone on a bond of eth0 and eth5 (both cabled to the lab's br-inet)
    zones:
      internet: bond0
    bonds:
      bond0:
        members: [eth0, eth5]
        mode: active-backup
    vlans:
      1:
        bridge: vbr1
        description: trash.net private (green)
      101:
        bridge: vbr101
        description: customer network example.org

  firewall:
    # the lab's Internet zone is the bridge br-inet in the lab's namespace
    ssh_sources: [192.0.2.0/24]

  # /dev/md0, numbered as in the design document; 1 (/), 2 (swap) and 4 (/var) are not
  # on the lab's array. GPT leaves no gap for the missing numbers.
  storage:
    partitions:
      5: {size: 512M, filesystem: ext4, mount: /local}
      6: {size: 384M, drbd: mirror0}
      7: {size: 384M, drbd: mirror1}
      8: {size: 384M, drbd: mirror2}

  drbd:
    # a new cluster's mirrors get their first copy from node1's (empty) side, once,
    # while neither side has held data; afterwards the key changes nothing
    initial_sync_source: node1
    resources:
      mirror0: {minor: 0, port: 7788, partition: 6, dual_primary: true}
      mirror1: {minor: 1, port: 7789, partition: 7, home: node1}
      mirror2: {minor: 2, port: 7790, partition: 8, home: node2}

  shared:
    drbd: mirror0
    mountpoint: /shared

  volume_groups:
    vg_node1: {drbd: mirror1, home: node1}
    vg_node2: {drbd: mirror2, home: node2}

  guest_defaults:
    domain_type: qemu
    # the lab's guests boot a kernel that only halts the CPU (the base image has it; about 3 %
    # of a node's vCPU per guest, where SeaBIOS looking for a boot disk cost 9-15 %): no OS
    # answers the power button, so they are stopped at once
    kernel: /usr/lib/trashlab/halt.bin
    stop: destroy
    memory: 128
    disk_size: 64M

  guests:
    stinky:
      description: shell server
      home: node1
      networks: [vbr0, vbr1]
    shell2:
      description: shell server
      home: node2
      networks: [vbr0, vbr1]
    knox:
      description: secondary DNS
      home: node2
      storage: local
      networks: [vbr0]
    ns1:
      description: primary DNS
      home: node1
      storage: local
      networks: [vbr0]
    fileserver:
      description: NFS server
      home: node1
      failover: true
      networks: [vbr1, vbr101]
