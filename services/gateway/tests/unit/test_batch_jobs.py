"""A job's CSV export is named after the job, safely for a Content-Disposition header
(`gateway.batch_jobs.export_file_name`)."""

from __future__ import annotations

from gateway.batch_jobs import export_file_name


def test_a_generated_job_id_is_the_file_name_unchanged() -> None:
    assert export_file_name("batch_0f3a9c.v2-x") == "batch_0f3a9c.v2-x"


def test_characters_a_header_would_need_quoted_become_underscores() -> None:
    assert export_file_name('a"b;c d/e\\f\r\n') == "a_b_c_d_e_f__"
