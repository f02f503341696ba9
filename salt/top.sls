# Cluster nodes are the minions that trash:nodes names; nothing is applied elsewhere.
base:
{%- if grains['id'] in salt['pillar.get']('trash:nodes', {}) %}
  '{{ grains['id'] }}':
    - trash
{%- endif %}
