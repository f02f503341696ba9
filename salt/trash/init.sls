{#- The whole pillar is validated before anything else is rendered. When it is
    invalid, the only state is the failed validation, which lists every problem
    with its key (show_highstate shows them too); nothing else can change. #}
{%- set check = salt['trash.validate']() %}
trash-pillar-validated:
  trash.pillar_valid:
    - order: 1
{%- if not check.valid %}
    - problems: {{ check.problems | json }}
{%- else %}

include:
  - trash.serial
  - trash.cluster
  - trash.drbd
  - trash.guests
{%- endif %}
