"""The rule set the engine serves, and the rule-file commands."""
