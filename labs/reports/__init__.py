"""Reports of one ``lab check`` run for programs: JUnit XML (CI test tabs), the GitHub
Classroom autograding reporter's JSON, and writing them safely.

Every report is built from the same :class:`labs.checking.CheckRun` and its
:class:`labs.scoring.Score`, so the terminal, ``--json``, JUnit and classroom forms never
disagree about a check's outcome or its points. Import from the modules
(``labs.reports.junit``, ``labs.reports.classroom``, ``labs.reports.files``).
"""
