# Secrets of the cluster. THESE ARE EXAMPLE VALUES, published with the project:
# replace every one before a real deployment (docs/pillar.md, "Secrets", says how
# to generate them) and keep this file readable by root only on the master.
trash:
  cluster:
    # corosync authkey: base64 of 128 random bytes (head -c 128 /dev/urandom | base64 -w0)
    authkey: FE9pDh4HU0j9omvgyrE4bHVCnkTwwVCFEBxBx71mZVUKY3Jra411rmSdUKHGHfOpJNiesFDDKSAE34N2BpEx43Np0Q0n1FlYFCcLkHs5iAWoNUWR9u91bnsJmoBEuFosxk6UcgDNidipzpK2QVTK4Co6BZv00foGXIo7YN0rXM4=
  drbd:
    # DRBD peer authentication (cram-hmac-alg sha1)
    shared_secret: Um8sw0N6UbUeTsweagmeRzusSK0mARDn
  nodes:
    node1:
      bmc:
        password: NcwT4nPTxE6wRKBc
    node2:
      bmc:
        password: qXLbrFDlEeS20t9n
