"""The resource agent files the cluster concern installs beside Debian's resource-agents.

Debian 12's VirtualDomain (resource-agents 4.12) writes two systemd drop-ins for
resource-agents-deps.target on every start and runs ``systemctl daemon-reload`` after each,
whether they changed or not: a failover of N guests reloads the manager 2N times at once
(20-30 s each on a loaded lab node; resource-agents 4.16 stopped it, ClusterLabs/
resource-agents#1983). ``ocf:trash:VirtualDomain`` is the Debian agent run with shell
functions whose ``systemd_drop_in`` leaves a dependency that is in effect alone, and
DEPS_DROPIN puts the dependencies of the agents the CIB uses (VirtualDomain's, LVM-activate's)
in effect from boot, so that neither agent reloads the manager at all.
"""

PROVIDER = "trash"
AGENT = f"/usr/lib/ocf/resource.d/{PROVIDER}/VirtualDomain"
FUNCTIONS = f"/usr/lib/ocf/lib/{PROVIDER}/ocf-shellfuncs"
DEPS_DROPIN = "/etc/systemd/system/resource-agents-deps.target.d/50-trash.conf"

_AGENT = f"""\
#!/bin/sh
# Managed by Salt (trash.cluster). Local changes are overwritten.
# ocf:heartbeat:VirtualDomain with {FUNCTIONS}: a drop-in already
# in effect is not followed by a systemd reload.
OCF_FUNCTIONS_DIR="${{OCF_ROOT:-/usr/lib/ocf}}/lib/{PROVIDER}" \\
    exec "${{OCF_ROOT:-/usr/lib/ocf}}/resource.d/heartbeat/VirtualDomain" "$@"
"""

_FUNCTIONS = """\
# Managed by Salt (trash.cluster). Local changes are overwritten.
# The resource agents' shell functions, with a systemd_drop_in that checks first, as
# LVM-activate does: a dependency of resource-agents-deps.target that systemd has loaded
# already is neither written again nor followed by a daemon-reload.
OCF_FUNCTIONS_DIR="${OCF_ROOT:-/usr/lib/ocf}/lib/heartbeat"
. "$OCF_FUNCTIONS_DIR/ocf-shellfuncs"

# usage: systemd_drop_in <name> <After|Before|Wants|...> <unit>
systemd_drop_in()
{
	local dir conf_file
	if [ $# -ne 3 ]; then
		ocf_log err "Incorrect number of arguments [$#] for systemd_drop_in."
	fi
	if systemctl show resource-agents-deps.target --property="$2" --value \\
			| tr ' ' '\\n' | grep -qxF "$3"; then
		return 0
	fi
	dir=/run/systemd/system/resource-agents-deps.target.d
	mkdir -p "$dir"
	conf_file="$dir/$1.conf"
	printf '[Unit]\\n%s=%s\\n' "$2" "$3" >"$conf_file"
	chmod o+r "$conf_file"
	systemctl daemon-reload
}
"""

# the dependencies VirtualDomain (guests stopped before libvirtd at shutdown) and
# LVM-activate (volume groups deactivated before the block devices go) would add at runtime
_DEPS = """\
# Managed by Salt (trash.cluster). Local changes are overwritten.
# The dependencies the resource agents of the cluster's configuration would add at
# runtime (each with a systemd reload), in effect from boot.
[Unit]
After=libvirtd.service blk-availability.service
Wants=virt-guest-shutdown.target
"""


def files():
    """{path: (content, mode)} of the installed agent files."""
    return {AGENT: (_AGENT, "0755"), FUNCTIONS: (_FUNCTIONS, "0644"),
            DEPS_DROPIN: (_DEPS, "0644")}
