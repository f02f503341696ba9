# The Debian packages of trash:packages: installed when missing, never upgraded or
# removed. The package lists are not refreshed, so a node without its mirror converges
# as long as nothing is missing. A live action: init.sls includes it when trash_root is /.
# mdadm joins them on a node whose disk is a software RAID of the pillar.
{%- set cfg = salt['trash.config']() %}
{%- set raid = cfg.nodes.get(grains['id'], {}).get('raid') %}
trash-packages-installed:
  pkg.installed:
    - pkgs: {{ (cfg.packages + (['mdadm'] if raid and 'mdadm' not in cfg.packages else [])) | json }}
    - refresh: False
