{#- Cluster events go to the notify runner, which filters non-members, redacts
    secrets and rate-limits. Two shapes arrive: an event a minion forwards (the DRBD
    handler's, event.send in a job) nests its payload under data.data, and data.id is
    the id the master authenticated; a beacon's payload is data itself, with the id
    its minion put there. #}
{%- if data.get('data') is mapping %}
{%-   set payload = data['data'] %}
{%- else %}
{%-   set payload = {} %}
{%-   for key, value in data.items() if key != 'id' and not key.startswith('_') %}
{%-     do payload.update({key: value}) %}
{%-   endfor %}
{%- endif %}
trash-notify-runner:
  runner.trash.notify:
    - args:
      - tag: {{ tag | json }}
      - data: {{ payload | json }}
      - minion: {{ data.get('id', '') | json }}
