"""Projects and API keys; assistants, threads, files and vector stores get a project.

Existing rows (and every request in open auth mode) belong to project 'default'.
Children (messages, runs, steps, vector store files, batches, chunks) are scoped
through their parent and get no column.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""
from alembic import op
import sqlalchemy as sa

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

SCOPED_TABLES = ('assistants', 'threads', 'files', 'vector_stores')


def upgrade() -> None:
    op.create_table('projects',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('seq')
    )
    op.execute("INSERT INTO projects (id, created_at) "
               "VALUES ('default', extract(epoch FROM now())::bigint)")
    op.create_table('api_keys',
    sa.Column('id', sa.Text(), nullable=False),
    sa.Column('seq', sa.BigInteger(), sa.Identity(always=True), nullable=False),
    sa.Column('project_id', sa.Text(), nullable=False),
    sa.Column('name', sa.Text(), nullable=True),
    sa.Column('prefix', sa.Text(), nullable=False),
    sa.Column('key_hash', sa.Text(), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('revoked_at', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key_hash'),
    sa.UniqueConstraint('seq')
    )
    op.create_index(op.f('ix_api_keys_project_id'), 'api_keys', ['project_id'], unique=False)
    for table in SCOPED_TABLES:
        # A constant server default: Postgres adds the column without rewriting the table.
        op.add_column(table, sa.Column('project_id', sa.Text(), server_default='default',
                                       nullable=False))
        # Lists filter on the project and page on seq.
        op.create_index(f'{table}_project_seq', table, ['project_id', 'seq'], unique=False)


def downgrade() -> None:
    for table in SCOPED_TABLES:
        op.drop_index(f'{table}_project_seq', table_name=table)
        op.drop_column(table, 'project_id')
    op.drop_index(op.f('ix_api_keys_project_id'), table_name='api_keys')
    op.drop_table('api_keys')
    op.drop_table('projects')
