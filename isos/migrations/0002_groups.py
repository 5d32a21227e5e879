"""Create the groups admin, operations and read-only with their ISO permissions.

On a fresh database the permission rows do not exist yet when this runs (Django makes
them in post_migrate, after every migration), so this migration creates the content types
and permission rows it needs itself; Django's later pass finds them and adds nothing.
"""

from django.db import migrations

# (app_label, model, codename, name)
PERMISSIONS = [
    ("isos", "isopermission", "generate_iso", "ISO:GENERATE"),
    ("isos", "isopermission", "read_iso", "ISO:READ"),
    ("osversions", "osversion", "use_osversion", "Can generate ISOs from this OS version"),
    ("osversions", "osversion", "view_osversion", "Can view OS version"),
    ("osversions", "osversion", "change_osversion", "Can change OS version"),
    ("isos", "isobuild", "view_isobuild", "Can view ISO build"),
]
GROUPS = {
    "admin": [codename for _, _, codename, _ in PERMISSIONS],
    "operations": ["generate_iso", "read_iso", "use_osversion", "view_osversion"],
    "read-only": ["read_iso", "view_osversion"],
}


def create_groups(apps, schema_editor):
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    permissions = {}
    for app_label, model, codename, name in PERMISSIONS:
        content_type, _ = ContentType.objects.get_or_create(app_label=app_label, model=model)
        permissions[codename], _ = Permission.objects.get_or_create(
            content_type=content_type, codename=codename, defaults={"name": name}
        )
    for group_name, codenames in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*(permissions[codename] for codename in codenames))


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("isos", "0001_initial"),
        ("osversions", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
