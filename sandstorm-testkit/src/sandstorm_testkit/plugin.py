"""The pytest plugin of the Sandstorm conformance kit (inert until used)."""
