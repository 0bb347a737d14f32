"""Templates: Go field names, value formats, delimiters, trim markers and what is refused."""

import re
from datetime import datetime, timezone
from types import MappingProxyType

import pytest

from kalad.core.errors import InvalidJob
from kalad.core.job import Job, JobType, Metadata, RemoteProperties
from kalad.core.template import job_fields, render

UTC = timezone.utc

JOB = Job(
    id="job-1",
    name="backup",
    created_at=datetime(2029, 12, 31, tzinfo=UTC),
    command="echo hi",
    owner="ops@example.com",
    dependent_jobs=("a", "b", "c"),
    on_failure_job="alarm",
    schedule="R/2030-01-01T00:00:00Z/PT1H",
    retries=2,
    epsilon="PT5M",
    next_run_at=datetime(2030, 1, 1, 1, 0, 0, 250000, tzinfo=UTC),
    template_delimiters="{{ }}",
    metadata=Metadata(success_count=7, error_count=3,
                      last_error=datetime(2030, 1, 1, 0, 30, tzinfo=UTC)),
    type=JobType.REMOTE,
    remote_properties=RemoteProperties(
        url="http://example.com/hook", method="POST",
        headers=MappingProxyType({"X-B": ("2",), "X-A": ("1", "one")}),
        timeout=5, expected_response_codes=(200, 204)),
)
FIELDS = job_fields(JOB)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{{.Name}}", "backup"),
        ("{{.Id}}", "job-1"),
        ("{{.Command}}", "echo hi"),
        ("{{.Owner}}", "ops@example.com"),
        ("{{.Disabled}}", "false"),
        ("{{.IsDone}}", "false"),
        ("{{.ResumeAtNextScheduledTime}}", "false"),
        ("{{.DependentJobs}}", "[a b c]"),
        ("{{.ParentJobs}}", "[]"),
        ("{{.OnFailureJob}}", "alarm"),
        ("{{.Schedule}}", "R/2030-01-01T00:00:00Z/PT1H"),
        ("{{.Retries}}", "2"),
        ("{{.Epsilon}}", "PT5M"),
        ("{{.NextRunAt}}", "2030-01-01T01:00:00.25Z"),
        ("{{.TemplateDelimiters}}", "{{ }}"),
        ("{{.JobType}}", "1"),
        ("{{.Metadata.SuccessCount}}", "7"),
        ("{{.Metadata.ErrorCount}}", "3"),
        ("{{.Metadata.LastError}}", "2030-01-01T00:30:00Z"),
        ("{{.Metadata.LastSuccess}}", "0001-01-01T00:00:00Z"),
        ("{{.Metadata.NumberOfFinishedRuns}}", "0"),
        ("{{.RemoteProperties.Url}}", "http://example.com/hook"),
        ("{{.RemoteProperties.Method}}", "POST"),
        ("{{.RemoteProperties.Timeout}}", "5"),
        ("{{.RemoteProperties.ExpectedResponseCodes}}", "[200 204]"),
        ("{{.RemoteProperties.Headers}}", "map[X-A:[1 one] X-B:[2]]"),
        ("{{.RemoteProperties.Headers.X_A}}", None),
        ("{{$.Owner}}", "ops@example.com"),
        ("{{ $.Metadata.SuccessCount }}", "7"),
        ("{{ .Name }}", "backup"),
        ("run {{.Name}} #{{.Metadata.SuccessCount}}!", "run backup #7!"),
        ("{{.Name}}{{.Id}}", "backupjob-1"),
        ("no actions at all", "no actions at all"),
        ("", ""),
        ("half {{ left", None),
        ("a }} b", "a }} b"),
    ],
)
def test_fields(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidJob):
            render(text, "{{ }}", FIELDS)
    else:
        assert render(text, "{{ }}", FIELDS) == expected


def test_default_job_fields() -> None:
    job = Job(id="j", name="n", created_at=datetime(2030, 1, 1, tzinfo=UTC))
    fields = job_fields(job)
    assert fields["NextRunAt"] == "0001-01-01T00:00:00Z"
    assert fields["JobType"] == 0
    assert fields["RemoteProperties"] == {"Url": "", "Method": "", "Body": "", "Headers": {},
                                          "Timeout": 0, "ExpectedResponseCodes": []}
    assert render("{{.RemoteProperties.Headers}} {{.DependentJobs}}", "{{ }}", fields) == \
        "map[] []"


@pytest.mark.parametrize(
    "delimiters, text, expected",
    [
        ("${ }", "id=${.Id} name={{.Name}}", "id=job-1 name={{.Name}}"),
        ("<< >>", "<<.Name>>/<<$.Retries>>", "backup/2"),
        ("[[ ]]", "[[ .Owner ]]", "ops@example.com"),
        ("% %", "%.Name%-%.Id%", "backup-job-1"),
        ("", "{{.Name}} stays {{ literal", "{{.Name}} stays {{ literal"),
    ],
)
def test_delimiters(delimiters: str, text: str, expected: str) -> None:
    assert render(text, delimiters, FIELDS) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("a  {{- .Name}}  b", "abackup  b"),
        ("a  {{.Name -}}  b", "a  backupb"),
        ("a \n\t{{- .Name -}}\r\n b", "abackupb"),
        ("x {{- .Name -}} y {{- .Id}}", "xbackupyjob-1"),
        ("a {{-.Name}}", None),  # Go: '-' needs a space after it to be a trim marker
        ("a {{.Name-}}", None),
    ],
)
def test_trim_markers(text: str, expected: str | None) -> None:
    if expected is None:
        with pytest.raises(InvalidJob, match="unsupported action"):
            render(text, "{{ }}", FIELDS)
    else:
        assert render(text, "{{ }}", FIELDS) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("{{.Foo}}", "template: unknown field 'Foo' in '{{.Foo}}'"),
        ("{{.Metadata.Foo}}", "template: unknown field 'Metadata.Foo' in '{{.Metadata.Foo}}'"),
        ("{{.Name.Foo}}", "template: unknown field 'Name.Foo' in '{{.Name.Foo}}'"),
        ("{{.name}}", "template: unknown field 'name' in '{{.name}}'"),
        ("{{.__class__}}", "template: unknown field '__class__' in '{{.__class__}}'"),
        ("{{._Name}}", "template: unknown field '_Name' in '{{._Name}}'"),
        ("{{.String}}", "template: unknown field 'String' in '{{.String}}'"),
        ("{{.}}", "template: '.' alone is not supported in '{{.}}'"),
        ("{{ $ }}", "template: '$' alone is not supported in '{{ $ }}'"),
        ('{{printf "%d" 1}}',
         "template: unsupported action 'printf \"%d\" 1' "
         "(only field paths like .Name are allowed)"),
        ("{{.Name | html}}", "template: unsupported action '.Name | html'"),
        ("{{if .Disabled}}x{{end}}", "template: unsupported action 'if .Disabled'"),
        ("{{index .DependentJobs 0}}", "template: unsupported action 'index .DependentJobs 0'"),
        ("{{(.Name)}}", "template: unsupported action '(.Name)'"),
        ("{{.Name.Upper()}}", "template: unsupported action '.Name.Upper()'"),
        ("{{$x := .Name}}", "template: unsupported action '$x := .Name'"),
        ("{{$x}}", "template: unsupported action '$x'"),
        ("{{/* note */}}", "template: unsupported action '/* note */'"),
        ("{{}}", "template: unsupported action ''"),
        ("ok {{.Name}} then {{.Name", "template: unclosed action starting at offset 18: '{{.Name'"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidJob, match=re.escape(message)):
        render(text, "{{ }}", FIELDS)


@pytest.mark.parametrize("delimiters", ["{{", "{{  }}", " {{ }}", "{{ }} ", "{{ [[ ]]", "{{}}"])
def test_delimiters_with_the_wrong_shape(delimiters: str) -> None:
    with pytest.raises(InvalidJob, match="TemplateDelimiters: must be two delimiters"):
        render("{{.Name}}", delimiters, FIELDS)


def test_lookup_never_leaves_the_fields() -> None:
    """Only keys of the given mappings resolve: attributes of the values never do."""
    fields = {"Name": "x", "Obj": JOB}
    with pytest.raises(InvalidJob, match="unknown field 'Obj.name'"):
        render("{{.Obj.name}}", "{{ }}", fields)
