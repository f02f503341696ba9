# /etc/hosts (both nodes by their back-channel addresses), chrony (checked by chronyd -p)
# with the peer node as an NTP peer, and the salt-minion's masters.
trash-basics-files-managed:
  trash.files_managed:
    - concern: basics
