{#- The whole pillar is validated before any state is rendered: one error names
    every problem with its key, and nothing runs. #}
{%- set check = salt['trash.validate']() %}
{%- if not check.valid %}
{{ raise(check.problems | length ~ " problem(s) in the trash pillar, nothing was changed:\n  " ~ check.problems | join("\n  ")) }}
{%- endif %}
include:
  - trash.cluster
  - trash.drbd
  - trash.guests
