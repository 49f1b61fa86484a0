%%% What every module of the agent shares: its version. Python loads the
%%% modules together and checks them together (microscope_agent:version/0
%%% reads this attribute from each): one missing, or at another version,
%%% and they are all loaded again. Keep VERSION equal to AGENT_VERSION in
%%% microscope_jupyter/agent/beam_file.py.
-define(VERSION, 32).
-microscope_version(?VERSION).
