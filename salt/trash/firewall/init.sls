# /etc/nftables.conf: table inet trash, what each zone may reach on the node itself;
# checked by nft -c before it is written.
trash-firewall-files-managed:
  trash.files_managed:
    - concern: firewall
