{#- Every trash/* event goes to the notify runner, which filters non-members, redacts
    secrets and rate-limits. data['id'] is the id the master authenticated, not a
    field the event chose. #}
trash-notify-runner:
  runner.trash.notify:
    - args:
      - tag: {{ tag | json }}
      - data: {{ data.get('data', {}) | json }}
      - minion: {{ data.get('id', '') | json }}
