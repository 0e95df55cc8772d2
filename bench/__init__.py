"""The benchmark: ``manage.py bench SCENARIO`` measures the shop beside the stack's own ceilings (bench/scenarios/)."""
