"""The ``interrupted`` outcome and each record's owning process; nobody may add, change or
delete audit records (or add or delete OS version rows), the admin group included.

Existing records get no owner (an old stream is judged by its age only); new ones name
the process that made them (isos.process_owner).
"""

from django.db import migrations, models

import isos.process_owner

NEVER_GRANTED = [
    ("isos", "add_isobuild"),
    ("isos", "change_isobuild"),
    ("isos", "delete_isobuild"),
    ("osversions", "add_osversion"),
    ("osversions", "delete_osversion"),
]


def revoke_never_granted(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    User = apps.get_model("auth", "User")
    for app_label, codename in NEVER_GRANTED:
        for permission in Permission.objects.filter(content_type__app_label=app_label, codename=codename):
            Group.permissions.through.objects.filter(permission=permission).delete()
            User.user_permissions.through.objects.filter(permission=permission).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("isos", "0002_groups"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.AlterField(
            model_name="isobuild",
            name="outcome",
            field=models.CharField(
                choices=[
                    ("streaming", "streaming"),
                    ("built", "built"),
                    ("refused", "refused"),
                    ("failed", "failed"),
                    ("client_went_away", "client went away"),
                    ("interrupted", "interrupted"),
                ],
                db_index=True,
                max_length=20,
            ),
        ),
        migrations.AddField(
            model_name="isobuild",
            name="owner_host",
            field=models.CharField(blank=True, default="", max_length=255),
        ),
        migrations.AlterField(
            model_name="isobuild",
            name="owner_host",
            field=models.CharField(blank=True, default=isos.process_owner.owner_host, max_length=255),
        ),
        migrations.AddField(
            model_name="isobuild",
            name="owner_pid",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="isobuild",
            name="owner_pid",
            field=models.PositiveIntegerField(blank=True, default=isos.process_owner.owner_pid, null=True),
        ),
        migrations.AddField(
            model_name="isobuild",
            name="owner_token",
            field=models.CharField(blank=True, default="", max_length=200),
        ),
        migrations.AlterField(
            model_name="isobuild",
            name="owner_token",
            field=models.CharField(blank=True, default=isos.process_owner.owner_token, max_length=200),
        ),
        migrations.AddField(
            model_name="isobuild",
            name="progressed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(revoke_never_granted, migrations.RunPython.noop),
    ]
