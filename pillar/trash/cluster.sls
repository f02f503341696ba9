# The trash.net cluster (REQUIREMENTS.md). Every key is documented in docs/pillar.md;
# defaults live in salt/trash/defaults.yaml. Secrets are in secrets.sls.
trash:
  cluster:
    name: trashnet
    domain: trash.net
    # When the nodes cannot see each other, this node fences the other one (R4).
    priority_node: node1

  nodes:
    node1:
      nodeid: 1
      # the hardware RAID array; for a software RAID the formula builds (docs/pillar.md):
      #   disk: /dev/md0
      #   raid: {level: 1, members: [/dev/sda, /dev/sdb]}
      disk: /dev/sda
      addresses:
        internet: 192.0.2.11/24
        storage: 10.10.1.1/24
        backchannel: 10.10.2.1/24
        # eth4 reaches the *peer's* BMC: node2's BMC is 10.10.4.2, see node2.bmc
        ipmi: 10.10.4.1/30
        # point-to-point address of the IP link over the ttyS0 null-modem cable
        serial: 10.10.5.1/30
      gateway: 192.0.2.1
      # this node's own BMC, reached by node2 over node2's eth4
      bmc:
        address: 10.10.4.6
        username: fence
    node2:
      nodeid: 2
      disk: /dev/sda
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
    # 802.1q VLANs on the LAN trunk (eth3): one VLAN interface and one bridge each.
    vlans:
      1:
        bridge: vbr1
        description: trash.net private (green)
      101:
        bridge: vbr101
        description: customer network example.org

  firewall:
    # who may reach ssh on the nodes over the Internet zone (eth0); nothing else gets in there
    ssh_sources: [198.51.100.0/24, 2001:db8:1::/48]

  # The RAID array of each node (nodes.<name>.disk), numbered as in the design document.
  storage:
    partitions:
      1: {size: 20G, filesystem: ext4, mount: /}
      2: {size: 8G, filesystem: swap}
      4: {size: 20G, filesystem: ext4, mount: /var}
      5: {size: 200G, filesystem: ext4, mount: /local}
      6: {size: 50G, drbd: mirror0}
      7: {size: 800G, drbd: mirror1}
      8: {size: 800G, drbd: mirror2}

  drbd:
    # a new cluster's mirrors get their first copy from node1's (empty) side, once,
    # while neither side has held data; afterwards the key changes nothing
    initial_sync_source: node1
    resources:
      # mirror 0: shared storage, GFS2 on /shared on both nodes
      mirror0: {minor: 0, port: 7788, partition: 6, dual_primary: true}
      # mirror 1 and 2: the physical volumes of the nodes' volume groups
      mirror1: {minor: 1, port: 7789, partition: 7, home: node1}
      mirror2: {minor: 2, port: 7790, partition: 8, home: node2}

  shared:
    drbd: mirror0
    mountpoint: /shared

  volume_groups:
    vg_node1: {drbd: mirror1, home: node1}
    vg_node2: {drbd: mirror2, home: node2}

  guests:
    stinky:
      description: shell server
      home: node1
      vcpus: 2
      memory: 2048
      disk_size: 40G
      networks: [vbr0, vbr1]
    shell2:
      description: shell server
      home: node2
      vcpus: 2
      memory: 2048
      disk_size: 40G
      networks: [vbr0, vbr1]
    knox:
      description: secondary DNS
      home: node2
      storage: local
      memory: 512
      disk_size: 10G
      networks: [vbr0]
    ns1:
      description: primary DNS
      home: node1
      storage: local
      memory: 512
      disk_size: 10G
      networks: [vbr0]
    fileserver:
      description: NFS server
      home: node1
      failover: true
      vcpus: 2
      memory: 4096
      disk_size: 500G
      networks: [vbr1, vbr101]

  notify:
    email:
      to: [ops@trash.net]
      from: cluster@trash.net
      smtp_host: mail.trash.net
    webhook:
      url: https://alerts.trash.net/hooks/cluster
