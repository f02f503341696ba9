# The Debian packages of trash:packages: installed when missing, never upgraded or
# removed. The package lists are not refreshed, so a node without its mirror converges
# as long as nothing is missing. A live action: init.sls includes it when trash_root is /.
trash-packages-installed:
  pkg.installed:
    - pkgs: {{ salt['trash.config']()['packages'] | json }}
    - refresh: False
