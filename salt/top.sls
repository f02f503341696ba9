# Cluster nodes are the minions that trash:nodes names; nothing is applied elsewhere.
{%- set nodes = salt['pillar.get']('trash:nodes', {}) %}
base:
{%- if nodes is mapping and grains['id'] in nodes %}
  '{{ grains['id'] }}':
    - trash
{%- endif %}
