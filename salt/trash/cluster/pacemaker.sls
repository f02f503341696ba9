# Push the rendered CIB into the running cluster. test=True shows the transition
# that crm_simulate predicts for it.
trash-pacemaker-configured:
  trash.pacemaker_configured:
    - require:
      - trash: trash-cluster-files-managed
